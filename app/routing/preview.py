"""What users see of routes before spending: the marketplace listing and a model's route preview."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from app.billing.models import LANES, WALLET_NAMES, WALLET_OF_LANE
from app.billing.pricing import Price
from app.catalog.models import Model
from app.database import utcnow
from app.extensions import db
from app.routing.planner import Step, plan, route_table, undated
from app.routing.status import ChannelStatus, PublicHealth, PublicState, channel_status, public_health

WALLETS = {lane.value: WALLET_NAMES[wallet.value] for lane, wallet in WALLET_OF_LANE.items()}  # by lane


@dataclass(frozen=True)
class AppliedPrice:
    """Micro-USD per 1M tokens after a channel's multiplier, exact (a Decimal can hold a fraction of a micro)."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal

    @classmethod
    def of(cls, price: Price, multiplier: Fraction) -> AppliedPrice:
        """The official price times the multiplier, as the planner's steps and the gateway's charge apply it."""
        return cls(_exact(price.input_per_mtok * multiplier), _exact(price.output_per_mtok * multiplier))


def _exact(value: Fraction) -> Decimal:
    # Multipliers have at most 6 decimals, so the quotient terminates well within Decimal's 28 digits.
    return Decimal(value.numerator) / Decimal(value.denominator)


@dataclass(frozen=True)
class CatalogEntry:
    """A published model's public facts."""

    id: str
    name: str
    provider: str
    mode: str
    context_window: int
    official: Price


@dataclass(frozen=True)
class StepHealth:
    """One route step as the listing shows it: a dot per step."""

    position: int
    label: str
    lane: str
    health: PublicHealth


@dataclass(frozen=True)
class ModelListing:
    """One marketplace row: the model, its prices and the live health of its route."""

    model: CatalogEntry
    routed: AppliedPrice | None  # the cheapest routed step's price; None without a routed step
    routed_from: bool  # several routed steps: `routed` is the cheapest ("from")
    steps: list[StepHealth]


@dataclass(frozen=True)
class StepPreview:
    """One route step as the preview shows it; never the channel's base URL or key."""

    position: int
    label: str
    lane: str
    wallet: str
    price: AppliedPrice
    upstream_model: str | None
    same_model: bool  # the same model as the primary's (a dated snapshot counts as the same)
    status: ChannelStatus
    health: PublicHealth


@dataclass(frozen=True)
class RoutePreview:
    """A model's whole route in order, and the step that serves if the primary fails."""

    model: CatalogEntry
    steps: list[StepPreview]
    fallback: StepPreview | None  # the first backup ready to serve, else the cooling one probed first
    fallback_cooling: bool  # no backup is ready: `fallback` is cooling and would be probed early

    @property
    def primary(self) -> StepPreview:
        return self.steps[0]

    @property
    def backups(self) -> list[StepPreview]:
        return self.steps[1:]


def marketplace_listing(search: str = "", mode: str | None = None,
                key_scopes: list[list[str] | None] | None = None) -> list[ModelListing]:
    """Published models with a route, by name; filtered by a search over name, id and provider, by mode,
    and, given the model lists of the user's usable keys (None for all models), by what those keys may use."""
    now, needle = utcnow(), search.strip().casefold()
    listings = []
    for entry in _catalog(list(route_table().routes)):
        if mode and entry.mode != mode:
            continue
        if needle and not any(needle in text.casefold() for text in (entry.name, entry.id, entry.provider)):
            continue
        if key_scopes is not None and not any(scope is None or entry.id in scope for scope in key_scopes):
            continue
        listings.append(_listing(entry, plan(entry.id, list(LANES), now), now))
    return listings


def route_preview(model_id: str) -> RoutePreview | None:
    """A published model's route, step by step with prices and health now; None if there is none to show."""
    entries = _catalog([model_id] if route_table().routes.get(model_id) else [])
    if not entries:
        return None
    entry, now = entries[0], utcnow()
    steps = plan(model_id, list(LANES), now)
    primary_model = steps[0].upstream_model
    previews = [_step_preview(entry, step, now, primary_model) for step in steps]
    fallback, cooling = _fallback(previews[1:])
    return RoutePreview(entry, previews, fallback, cooling)


def _catalog(routed_ids: list[str]) -> list[CatalogEntry]:
    """The catalog facts of those routed models that are published, by name."""
    published = [model_id for model_id in routed_ids if model_id in route_table().models]
    if not published:
        return []
    rows = db.session.scalars(db.select(Model).where(Model.id.in_(published)))
    # Sorted here, not in SQL: the databases' collations disagree on case.
    entries = [CatalogEntry(m.id, m.name, m.provider, m.mode, m.context_window, m.price) for m in rows]
    return sorted(entries, key=lambda entry: (entry.name.casefold(), entry.id))


def _listing(entry: CatalogEntry, steps: list[Step], now: datetime) -> ModelListing:
    statuses = [channel_status(step.channel, entry.id, now, step.health) for step in steps]
    # Only steps configured to serve the model set the routed price: a disabled relay's price is never paid.
    routed = [step for step, status in zip(steps, statuses) if step.channel.lane == "routed" and status.configured]
    cheapest = min(routed, key=lambda step: step.channel.multiplier, default=None)
    return ModelListing(
        model=entry,
        routed=AppliedPrice.of(entry.official, cheapest.channel.multiplier) if cheapest else None,
        routed_from=len(routed) > 1,
        steps=[StepHealth(step.position, step.channel.label, step.channel.lane, public_health(status))
               for step, status in zip(steps, statuses)])


def _step_preview(entry: CatalogEntry, step: Step, now: datetime, primary_model: str | None) -> StepPreview:
    status = channel_status(step.channel, entry.id, now, step.health)
    same = (step.upstream_model is not None and primary_model is not None
            and undated(step.upstream_model) == undated(primary_model))
    return StepPreview(step.position, step.channel.label, step.channel.lane, WALLETS[step.channel.lane],
                       AppliedPrice.of(entry.official, step.channel.multiplier), step.upstream_model, same,
                       status, public_health(status))


def _fallback(backups: list[StepPreview]) -> tuple[StepPreview | None, bool]:
    """The backup the planner would serve from after the primary: the first ready one, else the soonest cooling."""
    ready = next((step for step in backups if step.health.state == PublicState.HEALTHY), None)
    if ready is not None:
        return ready, False
    cooling = [step for step in backups if step.health.state == PublicState.COOLING]
    if cooling:
        return min(cooling, key=lambda step: step.health.seconds_left), True
    return None, False
