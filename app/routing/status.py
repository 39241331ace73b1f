"""A channel's state now, named once for the admin health board and, collapsed, for users."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime

from app.database import utcnow
from app.providers.base import ErrorClass
from app.routing.health import HEALTHY, Health, current_health
from app.routing.planner import ChannelInfo


class ChannelState(enum.StrEnum):
    """The health board's words for a channel (DESIGN.md, Contract > Pages)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    COOLING = "cooling"
    KEY_MISSING = "key missing"
    KEY_REJECTED = "key rejected"
    DISABLED = "disabled"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class ChannelStatus:
    """One channel's state for one model now, with what explains it."""

    state: ChannelState
    detail: str
    seconds_left: int | None = None  # cooling, or a rejected key waiting for its probe: seconds until it ends
    upstream_model: str | None = None  # the mapped upstream id; None for a model the channel has no mapping for
    served_model: str | None = None  # an observed mismatch: the model the channel last answered as
    consecutive_failures: int = 0
    no_mapping: bool = False  # a configured mismatch: the route names this channel, which cannot serve the model

    @property
    def configured(self) -> bool:
        """Its config lets it serve: enabled, with a key and a mapping (its health aside)."""
        return self.state not in (ChannelState.DISABLED, ChannelState.KEY_MISSING) and not self.no_mapping


def channel_status(channel: ChannelInfo, model_id: str | None = None, now: datetime | None = None,
                   health: Health | None = None) -> ChannelStatus:
    """Name a channel's state now, for a model (or for the channel alone when model_id is None).

    Config comes first (disabled, key missing, no mapping), then the shared circuit (rejected key,
    cooldown, failures), then an observed mismatch: the most actionable cause wins.
    """
    now = now or utcnow()
    health = health if health is not None else current_health().get(channel.id, HEALTHY)
    upstream_model = channel.model_map.get(model_id) if model_id is not None else None
    found = dict(upstream_model=upstream_model, consecutive_failures=health.consecutive_failures)
    if not channel.enabled:
        return ChannelStatus(ChannelState.DISABLED, "disabled by an admin", **found)
    if not channel.api_key:
        return ChannelStatus(ChannelState.KEY_MISSING, "no upstream key is set", **found)
    if model_id is not None and upstream_model is None:
        return ChannelStatus(ChannelState.MISMATCH, f"no mapping for {model_id}", no_mapping=True, **found)
    left = _seconds_left(health, now)
    if health.key_rejected:
        detail = "the upstream rejected the key" + (f"; probed again in {left} s" if left else "")
        return ChannelStatus(ChannelState.KEY_REJECTED, detail, seconds_left=left, **found)
    if left:
        return ChannelStatus(ChannelState.COOLING, f"cooling down for {left} s after failures", seconds_left=left,
                             **found)
    if health.consecutive_failures and health.last_error_class == ErrorClass.MODEL_MISMATCH:
        return ChannelStatus(ChannelState.MISMATCH, "the upstream did not know the mapped model", **found)
    if health.consecutive_failures:
        failures = health.consecutive_failures
        return ChannelStatus(ChannelState.DEGRADED, f"{failures} failure{'s' if failures != 1 else ''} in a row, "
                             f"last {health.last_error_class}", **found)
    if health.probe_due(now):
        return ChannelStatus(ChannelState.DEGRADED, "cooldown over; the next request probes it", **found)
    if health.observed_mismatch:
        return ChannelStatus(ChannelState.MISMATCH, f"answered as {health.observed_mismatch}",
                             served_model=health.observed_mismatch, **found)
    return ChannelStatus(ChannelState.HEALTHY, "serving", **found)


def _seconds_left(health: Health, now: datetime) -> int | None:
    """Whole seconds until the cooldown ends, rounded up so a cooling channel never reads 0 s."""
    if not health.cooling(now):
        return None
    return math.ceil((health.cooldown_until - now).total_seconds())


class PublicState(enum.StrEnum):
    """What users see of a channel's health: it serves, it cools down for a while, or it cannot serve."""

    HEALTHY = "healthy"
    COOLING = "cooling"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class PublicHealth:
    """A channel's health as users see it, with the reason when it cannot serve."""

    state: PublicState
    seconds_left: int | None = None
    reason: str | None = None  # unavailable: disabled, key missing, key rejected, no mapping

    @property
    def words(self) -> str:
        """The state in words: healthy, cooling for 25 s, unavailable (key missing)."""
        if self.state == PublicState.COOLING:
            return f"cooling for {self.seconds_left} s"
        if self.state == PublicState.UNAVAILABLE:
            return f"unavailable ({self.reason})"
        return str(self.state)


UNAVAILABLE = {ChannelState.DISABLED, ChannelState.KEY_MISSING, ChannelState.KEY_REJECTED}


def public_health(status: ChannelStatus) -> PublicHealth:
    """Collapse a channel's state to the three that users see; a failing channel still serving is healthy."""
    if status.state in UNAVAILABLE:
        return PublicHealth(PublicState.UNAVAILABLE, reason=str(status.state))
    if status.no_mapping:
        return PublicHealth(PublicState.UNAVAILABLE, reason="no mapping")
    if status.state == ChannelState.COOLING:
        return PublicHealth(PublicState.COOLING, seconds_left=status.seconds_left)
    return PublicHealth(PublicState.HEALTHY)
