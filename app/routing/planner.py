"""The planner: a model's route as ordered steps, each usable or skipped with its reason."""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from app.billing.pricing import Price
from app.catalog.models import Model
from app.extensions import db
from app.routing.health import Health, HEALTHY, current_health
from app.routing.keys import resolve_key
from app.routing.models import Channel, RouteStep
from app.runtime import runtime

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
    created_at: datetime | None = None


@dataclass(frozen=True)
class Step:
    """One route position, with the reason it must be skipped (None when it may be tried)."""

    position: int
    channel: ChannelInfo
    upstream_model: str | None
    skip: SkipReason | None
    health: Health


class SkipReason(enum.StrEnum):
    """Why the planner passes over a route step; the receipt's error class for it."""

    DISABLED = "disabled"
    KEY_MISSING = "key_missing"
    NO_MAPPING = "no_mapping"
    LANE_NOT_ALLOWED = "lane_not_allowed"
    KEY_REJECTED = "key_rejected"
    COOLING_DOWN = "cooling_down"
    INSUFFICIENT_BALANCE = "insufficient_balance"


@dataclass
class RouteTable:
    """Published models and their routes, loaded together and cached briefly."""

    models: dict[str, ModelInfo]
    routes: dict[str, list[tuple[int, ChannelInfo]]]
    catalog_prices: dict[str, Price]  # every catalog model, published or not: prices substituted models

    def catalog_price(self, model_id: str) -> tuple[str, Price] | None:
        """The official price of a model the catalog knows, by its id or its undated id."""
        for candidate in (model_id, undated(model_id)):
            if candidate in self.catalog_prices:
                return candidate, self.catalog_prices[candidate]
        return None


DATED_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3})$")


def undated(model_id: str) -> str:
    """A model id without its snapshot suffix: gpt-4o-mini-2024-07-18 is gpt-4o-mini."""
    return DATED_SUFFIX.sub("", model_id)


def route_table() -> RouteTable:
    """The cached route table, reloaded at most once a second per process."""
    cache = runtime().cache("route_table", ttl_s=CACHE_TTL_S)
    table = cache.get("table")
    if table is None:
        table = _load()
        cache.put("table", table)
    return table


def forget_cached_routes() -> None:
    """Drop this process's cached table after a config change."""
    runtime().cache("route_table", ttl_s=CACHE_TTL_S).clear()


def _load() -> RouteTable:
    catalog = list(db.session.scalars(db.select(Model)))
    models = {
        m.id: ModelInfo(m.id, m.mode, m.provider, m.max_output_tokens, m.price, m.supports_vision, m.supports_tools,
                        m.created_at)
        for m in catalog if m.published
    }
    channels = {
        c.id: ChannelInfo(c.id, c.name, c.label, c.provider, c.base_url, c.lane, c.price_multiplier,
                          c.timeout_s, c.enabled, dict(c.model_map or {}), resolve_key(c))
        for c in db.session.scalars(db.select(Channel))
    }
    routes: dict[str, list[tuple[int, ChannelInfo]]] = {}
    for step in db.session.scalars(db.select(RouteStep).order_by(RouteStep.model_id, RouteStep.position)):
        routes.setdefault(step.model_id, []).append((step.position, channels[step.channel_id]))
    return RouteTable(models=models, routes=routes, catalog_prices={m.id: m.price for m in catalog})


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
                 health: Health, now: datetime) -> SkipReason | None:
    if not channel.enabled:
        return SkipReason.DISABLED
    if not channel.api_key:
        return SkipReason.KEY_MISSING
    if upstream_model is None:
        return SkipReason.NO_MAPPING
    if channel.lane not in allowed_lanes:
        return SkipReason.LANE_NOT_ALLOWED
    if health.cooling(now):
        # A rejected key waits out its cooldown too; after it, a probe tries the key again.
        return SkipReason.KEY_REJECTED if health.key_rejected else SkipReason.COOLING_DOWN
    return None
