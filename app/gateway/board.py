"""The admin health board: every channel's state and recent figures, incidents, and observed model mismatches.

The figures come from the gateway's Attempt rows, read by an indexed range on receipt.created_at and
cached for BOARD_TTL_S per process, so any number of admins polling every 2 s cost one query per worker
per 2 s. States, countdowns and incidents are read on every call from the health and route caches
(each refreshed at most once a second), so a reset shows at once and a countdown is exact.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable
from urllib.parse import urlsplit

from sqlalchemy import func, or_

from app.audit_trail.service import record_change
from app.billing.models import LANES
from app.database import utcnow, write_transaction
from app.extensions import db
from app.gateway.models import Attempt, Receipt
from app.gateway.receipts import error_label
from app.routing.admin import channel_info, get_channel
from app.routing import health as circuit
from app.routing.health import HEALTHY, ChannelHealth, Health, current_health, forget_cached_health
from app.routing.models import Channel
from app.routing.planner import plan, route_table, undated
from app.routing.status import ChannelState, ChannelStatus, channel_status
from app.runtime import runtime

BOARD_TTL_S = 2.0
WINDOWS = (("5 min", 300), ("1 h", 3600))
MISMATCH_WINDOW_S = 86_400
# A step the planner never tries as things stand; a cooling one still counts as usable, as it gets probed.
UNUSABLE = {ChannelState.DISABLED, ChannelState.KEY_MISSING, ChannelState.KEY_REJECTED}
# One channel alone is never "provider-wide": the board cannot tell an outage from that channel's own key or quota.
INCIDENT_MIN_CHANNELS = 2


@dataclass(frozen=True)
class Figures:
    """A channel's requests in one window: how many, how many were answered, and the answers' latency."""

    requests: int = 0
    ok: int = 0
    p50_ms: int | None = None
    p95_ms: int | None = None

    @property
    def success_rate(self) -> float | None:
        """Answered requests as a fraction, or None with no requests."""
        return self.ok / self.requests if self.requests else None


NO_FIGURES = Figures()


@dataclass(frozen=True)
class Mismatch:
    """An upstream answering as another model than configured (served None: it did not know the model)."""

    channel: str
    configured: str
    served: str | None
    count: int
    last_seen: datetime


@dataclass(frozen=True)
class RecentActivity:
    """What the attempts of the recent past say: figures per channel name and window, and mismatches."""

    figures: dict[str, dict[str, Figures]]
    mismatches: list[Mismatch]


@dataclass(frozen=True)
class BoardRow:
    """One channel on the board: its state now, its figures, its last error and what it is part of."""

    channel: Channel
    status: ChannelStatus
    figures: dict[str, Figures]
    last_error_class: str | None
    last_error_at: datetime | None
    failing: bool
    host: str
    incident: str | None = None  # the banner naming it, when it is part of a provider-wide incident

    @property
    def last_error_words(self) -> str | None:
        return error_label(self.last_error_class)

    @property
    def can_reset_cooldown(self) -> bool:
        return self.failing and self.status.state != ChannelState.KEY_REJECTED

    @property
    def can_clear_rejected(self) -> bool:
        return self.status.state == ChannelState.KEY_REJECTED


@dataclass(frozen=True)
class Incident:
    """Every enabled, keyed channel of one provider or on one base-URL host is failing or cooling."""

    kind: str  # "provider" or "host"
    name: str
    channels: list[str]

    @property
    def title(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class UnusableModel:
    """A published model none of whose steps the planner would try: its requests get 503."""

    model_id: str
    reasons: list[str]


@dataclass
class HealthBoard:
    """The whole board at one moment."""

    now: datetime
    unusable: list[UnusableModel]
    rows: list[BoardRow]
    incidents: list[Incident]
    mismatches: list[Mismatch]
    single_issues: list[BoardRow] = field(default_factory=list)


# ---- Figures from attempts ----------------------------------------------------------------------------------

def percentile(sorted_values: list[int], fraction: float) -> int | None:
    """The nearest-rank percentile of sorted values, or None for none."""
    if not sorted_values:
        return None
    return sorted_values[max(math.ceil(fraction * len(sorted_values)) - 1, 0)]


def _figures(rows: list[tuple[str, int | None]]) -> Figures:
    latencies = sorted(latency for outcome, latency in rows if outcome == "ok" and latency is not None)
    ok = sum(1 for outcome, _ in rows if outcome == "ok")
    return Figures(len(rows), ok, percentile(latencies, 0.5), percentile(latencies, 0.95))


def recent_activity(now: datetime) -> RecentActivity:
    """Per-channel figures over each window, and mismatches over a day, from an indexed range of receipts."""
    longest = max(seconds for _, seconds in WINDOWS)
    rows = db.session.execute(
        db.select(Attempt.channel, Attempt.outcome, Attempt.latency_ms, Receipt.created_at)
        .join(Receipt, Receipt.id == Attempt.receipt_id)
        .where(Receipt.created_at >= now - timedelta(seconds=longest), Receipt.created_at <= now,
               Attempt.outcome.in_(("ok", "error"))))  # skipped attempts never reached the upstream
    by_window: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for channel, outcome, latency, created_at in rows:
        for name, seconds in WINDOWS:
            if created_at >= now - timedelta(seconds=seconds):
                by_window[channel][name].append((outcome, latency))
    figures = {channel: {name: _figures(windows.get(name, [])) for name, _ in WINDOWS}
               for channel, windows in by_window.items()}
    return RecentActivity(figures, _mismatches(now))


def _mismatches(now: datetime) -> list[Mismatch]:
    """Configured against served models over the last day, counted, most recent first."""
    rows = db.session.execute(
        db.select(Attempt.channel, Attempt.upstream_model, Attempt.served_model, func.count(),
                  func.max(Receipt.created_at))
        .join(Receipt, Receipt.id == Attempt.receipt_id)
        .where(Receipt.created_at >= now - timedelta(seconds=MISMATCH_WINDOW_S), Receipt.created_at <= now,
               or_(Attempt.error_class == "model_mismatch",
                   (Attempt.served_model.is_not(None)) & (Attempt.served_model != Attempt.upstream_model)))
        .group_by(Attempt.channel, Attempt.upstream_model, Attempt.served_model))
    found = [Mismatch(channel, configured or "", served, count, last_seen)
             for channel, configured, served, count, last_seen in rows
             # A dated snapshot of the configured model is the same model, as the gateway judges it.
             if served is None or undated(served) != undated(configured or "")]
    return sorted(found, key=lambda m: m.last_seen, reverse=True)


def cached_activity(now: datetime) -> RecentActivity:
    """The recent activity, computed at most once per BOARD_TTL_S per process."""
    cache = runtime().cache("health_board", ttl_s=BOARD_TTL_S)
    activity = cache.get("activity")
    if activity is None:
        activity = recent_activity(now)
        cache.put("activity", activity)
    return activity


# ---- The board ----------------------------------------------------------------------------------------------

def host_of(base_url: str) -> str:
    """A base URL's host name, lower-cased: channels on one host share its outages."""
    return (urlsplit(base_url).hostname or base_url).lower()


def is_failing(health: Health) -> bool:
    """The circuit shows trouble: failures in a row, a cooldown (running or awaiting its probe), a rejected key."""
    return bool(health.consecutive_failures or health.cooldown_until is not None or health.key_rejected)


def find_incidents(rows: list[BoardRow]) -> list[Incident]:
    """Providers and hosts whose every enabled, keyed channel is failing or cooling (at least two of them)."""
    incidents = []
    for kind, group_of in (("provider", lambda row: row.channel.provider), ("host", lambda row: row.host)):
        groups: dict[str, list[BoardRow]] = defaultdict(list)
        for row in rows:
            if row.status.state not in (ChannelState.DISABLED, ChannelState.KEY_MISSING):
                groups[group_of(row)].append(row)
        for name, members in sorted(groups.items()):
            if len(members) >= INCIDENT_MIN_CHANNELS and all(row.failing for row in members):
                incidents.append(Incident(kind, name, [row.channel.name for row in members]))
    return incidents


def unusable_models(now: datetime) -> list[UnusableModel]:
    """Published models with no route, or whose every step is disabled, keyless, rejected or unmapped."""
    table = route_table()
    found = []
    for model_id in sorted(table.models, key=str.casefold):
        steps = plan(model_id, list(LANES), now)
        if not steps:
            found.append(UnusableModel(model_id, ["no route"]))
            continue
        statuses = [(step, channel_status(step.channel, model_id, now, step.health)) for step in steps]
        if all(status.state in UNUSABLE or status.no_mapping for _, status in statuses):
            reasons = [f"{step.channel.name}: {'no mapping' if status.no_mapping else status.state}"
                       for step, status in statuses]
            found.append(UnusableModel(model_id, reasons))
    return found


def health_board(now: datetime | None = None) -> HealthBoard:
    """The board now: states fresh from the health cache, figures from the cached recent activity."""
    now = now or utcnow()
    activity = cached_activity(now)
    health = current_health()
    errors = {row.channel_id: (row.last_error_class, row.last_error_at)
              for row in db.session.scalars(db.select(ChannelHealth))}
    rows = []
    for channel in db.session.scalars(db.select(Channel).order_by(Channel.provider, Channel.name)):
        channel_health = health.get(channel.id, HEALTHY)
        status = channel_status(channel_info(channel), None, now, channel_health)
        last_class, last_at = errors.get(channel.id, (None, None))
        rows.append(BoardRow(channel, status, activity.figures.get(channel.name, {}), last_class, last_at,
                               status.configured and is_failing(channel_health), host_of(channel.base_url)))
    incidents = find_incidents(rows)
    in_incident = {name: incident for incident in incidents for name in incident.channels}
    rows = [replace(row, incident=in_incident[row.channel.name].title) if row.channel.name in in_incident else row
            for row in rows]
    board = HealthBoard(now, unusable_models(now), rows, incidents, activity.mismatches)
    board.single_issues = [row for row in rows if row.failing and row.incident is None]
    return board


# ---- Admin actions ------------------------------------------------------------------------------------------

def _circuit(channel_id: int) -> dict:
    row = db.session.get(ChannelHealth, channel_id, populate_existing=True)
    if row is None:
        return {"cooldown_until": None, "consecutive_failures": 0, "key_rejected": False}
    return {"cooldown_until": row.cooldown_until.isoformat(timespec="seconds") if row.cooldown_until else None,
            "consecutive_failures": row.consecutive_failures, "key_rejected": row.key_rejected}


def reset_cooldown(actor_id: int | None, channel_id: int) -> Channel:
    """End a channel's cooldown and failure run now, audited; a rejected key stays rejected."""
    return _change_circuit(actor_id, channel_id, "cooldown_reset", circuit.reset_cooldown)


def clear_rejected_key(actor_id: int | None, channel_id: int) -> Channel:
    """Forget that the upstream rejected the channel's key, so the next request tries it; audited."""
    return _change_circuit(actor_id, channel_id, "key_rejected_cleared", circuit.clear_key_rejected)


def _change_circuit(actor_id: int | None, channel_id: int, action: str, change: Callable[[int], None]) -> Channel:
    """Apply one change to a channel's circuit with its audit record (before → after), then drop cached health."""
    channel = get_channel(channel_id)
    with write_transaction():
        before = _circuit(channel_id)
        change(channel_id)
        record_change(actor_id, action, f"channel {channel.name}", before, _circuit(channel_id))
    forget_cached_health()
    return channel
