"""The composer's model picker: the chat models a user may ask, with their lanes, prices and route health."""
from __future__ import annotations

from dataclasses import dataclass

from app.billing.pricing import usd_text
from app.routing.preview import ModelListing, marketplace_listing
from app.routing.status import PublicState

HEALTH_ORDER = (PublicState.HEALTHY, PublicState.COOLING, PublicState.UNAVAILABLE)


@dataclass(frozen=True)
class ModelChoice:
    """One option of the picker."""

    id: str
    label: str
    lanes: tuple[str, ...]  # the lanes of the steps that can serve now or after a cooldown
    health: PublicState     # the best of its steps: one healthy step makes the route healthy

    @property
    def usable(self) -> bool:
        return bool(self.lanes)


def model_choices() -> list[ModelChoice]:
    """Every published chat model with a route, by name; one with no step that can serve is listed unusable."""
    return [_choice(listing) for listing in marketplace_listing(mode="chat")]


def _choice(listing: ModelListing) -> ModelChoice:
    serving = [step for step in listing.steps if step.health.state != PublicState.UNAVAILABLE]
    lanes = tuple(lane for lane in ("official", "routed") if any(step.lane == lane for step in serving))
    health = min((step.health.state for step in listing.steps), key=HEALTH_ORDER.index,
                 default=PublicState.UNAVAILABLE)
    official = listing.model.official
    prices = []
    if "official" in lanes:
        prices.append(f"Credit {usd_text(official.input_per_mtok)}/{usd_text(official.output_per_mtok)}")
    if "routed" in lanes and listing.routed is not None:
        prices.append(f"routed {'from ' if listing.routed_from else ''}"
                      f"{usd_text(int(listing.routed.input_per_mtok))}/{usd_text(int(listing.routed.output_per_mtok))}")
    price_text = f" · {' · '.join(prices)} per 1M tokens" if prices else ""
    return ModelChoice(listing.model.id, f"{listing.model.name} · route {health}{price_text}", lanes, health)


def choice_of(choices: list[ModelChoice], model_id: str | None) -> ModelChoice | None:
    """The chosen model's entry; else the first usable one, so a page always starts on something that can answer."""
    chosen = next((choice for choice in choices if choice.id == model_id), None)
    return chosen or next((choice for choice in choices if choice.usable), None)
