"""The planner: a model's route as ordered steps, each usable or skipped with its reason."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from app.billing.pricing import Price
from app.catalog.models import Model
from app.extensions import db
from app.routing.health import Health, HEALTHY, current_health
from app.routing.keys import resolve_key
from app.routing.models import Channel, RouteStep

CACHE_TTL_S = 1.0  # config changes reach every worker within this


@dataclass(frozen=True)
class ChannelInfo:
    """What the gateway needs of a channel, detached from the database session."""

    id: int
    name: str
    label: str
    provider: str
    base_url: str
    lane: str
    multiplier: Fraction
    timeout_s: float
    enabled: bool
    model_map: dict
    api_key: str | None


@dataclass(frozen=True)
class ModelInfo:
    """A published model's official price and limits."""

    id: str
    mode: str
    provider: str
    max_output_tokens: int
    price: Price
    supports_vision: bool = True
    supports_tools: bool = True


@dataclass(frozen=True)
class Step:
    """One route position, with the reason it must be skipped (None when it may be tried)."""

    position: int
    channel: ChannelInfo
    upstream_model: str | None
    skip: str | None
    health: Health


@dataclass
class RouteTable:
    """Published models and their routes, loaded together and cached briefly."""

    models: dict[str, ModelInfo]
    routes: dict[str, list[tuple[int, ChannelInfo]]]


_cache: dict[str, object] = {"at": 0.0, "table": None}
_lock = threading.Lock()


def route_table() -> RouteTable:
    """The cached route table, reloaded at most once a second per process."""
    now = time.monotonic()
    table = _cache["table"]
    if table is not None and now - _cache["at"] < CACHE_TTL_S:
        return table
    table = _load()
    with _lock:
        _cache.update(at=now, table=table)
    return table


def forget_cached_routes() -> None:
    """Drop this process's cached table after a config change."""
    with _lock:
        _cache.update(at=0.0, table=None)


def _load() -> RouteTable:
    models = {
        m.id: ModelInfo(m.id, m.mode, m.provider, m.max_output_tokens, m.price, m.supports_vision, m.supports_tools)
        for m in db.session.scalars(db.select(Model).where(Model.published))
    }
    channels = {
        c.id: ChannelInfo(c.id, c.name, c.label, c.provider, c.base_url, c.lane, c.price_multiplier,
                          c.timeout_s, c.enabled, dict(c.model_map or {}), resolve_key(c))
        for c in db.session.scalars(db.select(Channel))
    }
    routes: dict[str, list[tuple[int, ChannelInfo]]] = {}
    for step in db.session.scalars(db.select(RouteStep).order_by(RouteStep.model_id, RouteStep.position)):
        routes.setdefault(step.model_id, []).append((step.position, channels[step.channel_id]))
    return RouteTable(models=models, routes=routes)


def plan(model_id: str, allowed_lanes: list[str], now: datetime) -> list[Step]:
    """Walk the model's route in order and mark every step that must be skipped, with why."""
    health = current_health()
    steps = []
    for position, channel in route_table().routes.get(model_id, []):
        channel_health = health.get(channel.id, HEALTHY)
        upstream_model = channel.model_map.get(model_id)
        steps.append(Step(position, channel, upstream_model,
                          _skip_reason(channel, upstream_model, allowed_lanes, channel_health, now),
                          channel_health))
    return steps


def _skip_reason(channel: ChannelInfo, upstream_model: str | None, allowed_lanes: list[str],
                 health: Health, now: datetime) -> str | None:
    if not channel.enabled:
        return "disabled"
    if not channel.api_key:
        return "key_missing"
    if upstream_model is None:
        return "no_mapping"
    if channel.lane not in allowed_lanes:
        return "lane_not_allowed"
    if health.key_rejected:
        return "key_rejected"
    if health.cooling(now):
        return "cooling_down"
    return None
