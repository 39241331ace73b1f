"""What admins change about channels and routes, each change audited in its own transaction.

Channels are checked exactly as `waybill config import` checks them (config_file.check_channel),
keys are write-only, and every change drops this process's cached route table so the gateway
serves the new config at once (other workers within the table's one-second cache).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime

from app.audit_trail.service import changed_fields, record_change
from app.billing.models import LANES
from app.catalog.models import Model
from app.catalog.queries import model_ids
from app.database import utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.routing.config_file import check_channel
from app.routing.health import HEALTHY, clear_key_rejected, current_health, forget_cached_health
from app.routing.keys import resolve_key, store_key
from app.routing.models import Channel, RouteStep
from app.routing.planner import ChannelInfo, forget_cached_routes, plan, route_table, undated
from app.routing.status import ChannelState, ChannelStatus, channel_status

# The form's fields, in the config file's spelling; a key is applied apart from them.
CHANNEL_SETTINGS = ("name", "label", "provider", "base_url", "lane", "price_multiplier", "timeout_s", "enabled",
                    "models")


class ChannelInvalid(ServiceError):
    """A channel's settings that cannot be saved, with the problems of each field."""

    def __init__(self, problems: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {', '.join(messages)}" for name, messages in problems.items()))
        self.problems = problems


class ChannelNotFound(ServiceError):
    """No channel has that id."""


class RouteError(ServiceError):
    """A route change that cannot be applied; nothing was changed."""


class RouteNotFound(ServiceError):
    """The catalog has no such model."""


# ---- Reading channels ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyDisplay:
    """How an admin sees a channel's key: never the key, only whether and where it is set."""

    words: str
    missing: bool


def key_display(channel: Channel) -> KeyDisplay:
    """'set, ends …abcd', 'from $ENV_NAME', or missing (flagged)."""
    if channel.api_key_encrypted is not None:
        return KeyDisplay(f"set, ends …{channel.api_key_last4}", False)
    if channel.api_key_env:
        if os.environ.get(channel.api_key_env):
            return KeyDisplay(f"from ${channel.api_key_env}", False)
        return KeyDisplay(f"missing: ${channel.api_key_env} is not set", True)
    return KeyDisplay("missing", True)


def key_state(channel: Channel) -> str:
    """The key as the audit trail records it: set, from $ENV, or missing; never any of its characters."""
    if channel.api_key_encrypted is not None:
        return "set"
    return f"from ${channel.api_key_env}" if channel.api_key_env else "missing"


def channel_info(channel: Channel) -> ChannelInfo:
    """A channel as the planner and the status words take it, its key resolved."""
    return ChannelInfo(channel.id, channel.name, channel.label, channel.provider, channel.base_url, channel.lane,
                       channel.price_multiplier, channel.timeout_s, channel.enabled, dict(channel.model_map or {}),
                       resolve_key(channel))


@dataclass(frozen=True)
class ChannelRow:
    """One channel on the admin channels page."""

    channel: Channel
    status: ChannelStatus
    key: KeyDisplay
    routes: list[str]  # models whose route names this channel


def channel_rows() -> dict[str, list[ChannelRow]]:
    """Every channel with its state and key display, grouped by lane (official first), by name."""
    health, now = current_health(), utcnow()
    routed_models: dict[int, list[str]] = {}
    for model_id, channel_id in db.session.execute(
            db.select(RouteStep.model_id, RouteStep.channel_id).order_by(RouteStep.model_id)):
        routed_models.setdefault(channel_id, []).append(model_id)
    lanes: dict[str, list[ChannelRow]] = {lane: [] for lane in LANES}
    for channel in db.session.scalars(db.select(Channel).order_by(Channel.name)):
        status = channel_status(channel_info(channel), None, now, health.get(channel.id, HEALTHY))
        lanes.setdefault(channel.lane, []).append(
            ChannelRow(channel, status, key_display(channel), routed_models.get(channel.id, [])))
    return lanes


def channel_row(channel_id: int) -> ChannelRow:
    """One channel's row, read fresh."""
    channel = get_channel(channel_id)
    status = channel_status(channel_info(channel), None, utcnow(), current_health().get(channel.id, HEALTHY))
    routes = list(db.session.scalars(db.select(RouteStep.model_id).where(RouteStep.channel_id == channel_id)
                                     .order_by(RouteStep.model_id)))
    return ChannelRow(channel, status, key_display(channel), routes)


def get_channel(channel_id: int) -> Channel:
    """The channel with that id, or ChannelNotFound."""
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        raise ChannelNotFound(f"no channel has id {channel_id}")
    return channel


def catalog_choices() -> list[tuple[str, str]]:
    """(id, name) of every catalog model, published first, for the model-map editor's suggestions."""
    rows = db.session.execute(db.select(Model.id, Model.name, Model.published))
    return [(model_id, name) for model_id, name, _published in
            sorted(rows, key=lambda row: (not row[2], row[0].casefold()))]


# ---- Changing channels --------------------------------------------------------------------------------------

def _snapshot(channel: Channel) -> dict:
    """A channel's settings as the audit trail records them, the key as its state only."""
    return {"name": channel.name, "label": channel.label, "provider": channel.provider,
            "base_url": channel.base_url, "lane": channel.lane, "price_multiplier": channel.price_multiplier_text,
            "timeout_s": channel.timeout_s, "enabled": channel.enabled, "models": dict(channel.model_map or {}),
            "key": key_state(channel)}


def _checked(table: dict, channel_id: int | None) -> dict:
    """The settings as config import checks them, plus what only the database can tell; else ChannelInvalid."""
    values, problems = check_channel(table)
    unknown = sorted(set(values["model_map"]) - model_ids())
    if unknown:
        problems.setdefault("models", []).append(
            f"not in the catalog: {', '.join(unknown)}; sync the catalog or pick a listed model id")
    if values["name"]:
        taken = db.session.scalar(db.select(Channel.id).where(Channel.name == values["name"]))
        if taken is not None and taken != channel_id:
            problems.setdefault("name", []).append(f"another channel is already named {values['name']!r}")
    if problems:
        raise ChannelInvalid(problems)
    return values


def create_channel(actor_id: int | None, table: dict) -> Channel:
    """Add a channel from config-file-style settings (api_key or api_key_env optional)."""
    values = _checked(table, None)
    with write_transaction():
        channel = Channel(name=values["name"], model_map={})
        db.session.add(channel)
        _apply_settings(channel, values)
        _apply_key(channel, values["api_key"], values["api_key_env"])
        db.session.flush()
        record_change(actor_id, "channel_created", f"channel {channel.name}", None, _snapshot(channel))
    forget_cached_routes()
    return channel


def update_channel(actor_id: int | None, channel_id: int, table: dict) -> Channel:
    """Save an edited channel; a filled api_key (or a new api_key_env) replaces the key, blank keeps it."""
    channel = get_channel(channel_id)
    values = _checked(table, channel_id)
    with write_transaction():
        channel = _locked(channel_id)
        before = _snapshot(channel)
        _apply_settings(channel, values)
        settings_before, settings_after = changed_fields(
            {k: v for k, v in before.items() if k != "key"},
            {k: v for k, v in _snapshot(channel).items() if k != "key"})
        if settings_after:
            record_change(actor_id, "channel_updated", f"channel {channel.name}", settings_before, settings_after)
        new_key = values["api_key"] or (values["api_key_env"] if values["api_key_env"] != channel.api_key_env
                                        or channel.api_key_encrypted is not None else None)
        if new_key:
            _apply_key(channel, values["api_key"], values["api_key_env"])
            record_change(actor_id, "channel_key_set", f"channel {channel.name}", {"key": before["key"]},
                          {"key": key_state(channel)})
            clear_key_rejected(channel.id)  # a new key deserves a new try
    _forget()
    return channel


def set_channel_enabled(actor_id: int | None, channel_id: int, enabled: bool) -> Channel:
    """Enable or disable a channel; the planner skips a disabled one on every route."""
    get_channel(channel_id)
    with write_transaction():
        channel = _locked(channel_id)
        if channel.enabled != enabled:
            channel.enabled = enabled
            record_change(actor_id, "channel_enabled" if enabled else "channel_disabled", f"channel {channel.name}",
                          {"enabled": not enabled}, {"enabled": enabled})
    _forget()
    return channel


def clear_channel_key(actor_id: int | None, channel_id: int) -> Channel:
    """Forget a channel's key, stored or named in the environment: it is then 'key missing' and skipped."""
    get_channel(channel_id)
    with write_transaction():
        channel = _locked(channel_id)
        before = key_state(channel)
        if before != "missing":
            channel.api_key_encrypted = channel.api_key_last4 = channel.api_key_env = None
            record_change(actor_id, "channel_key_cleared", f"channel {channel.name}", {"key": before},
                          {"key": "cleared"})
            clear_key_rejected(channel.id)
    _forget()
    return channel


def _locked(channel_id: int) -> Channel:
    """The channel row, locked for this write transaction and read fresh, so concurrent edits queue."""
    return db.session.scalar(db.select(Channel).where(Channel.id == channel_id).with_for_update()
                             .execution_options(populate_existing=True))


def _apply_settings(channel: Channel, values: dict) -> None:
    channel.name, channel.label, channel.provider = values["name"], values["label"], values["provider"]
    channel.base_url, channel.lane, channel.enabled = values["base_url"].strip(), values["lane"], values["enabled"]
    channel.price_multiplier_text, channel.timeout_s = values["price_multiplier"], values["timeout_s"]
    channel.model_map = dict(values["model_map"])


def _apply_key(channel: Channel, api_key: str | None, api_key_env: str | None) -> None:
    """Store a new key (dropping any environment name), or switch to an environment variable."""
    if api_key:
        store_key(channel, api_key)
        channel.api_key_env = None
    elif api_key_env:
        channel.api_key_env = api_key_env
        channel.api_key_encrypted = channel.api_key_last4 = None


def _forget() -> None:
    """After a commit: this process reads the new config and health at once."""
    forget_cached_routes()
    forget_cached_health()


# ---- Reading routes -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepView:
    """One step of a route card: the channel, its state for this model, and what is wrong with it."""

    position: int
    channel_id: int
    name: str
    label: str
    lane: str
    upstream_model: str | None
    status: ChannelStatus
    warnings: list[str]
    usable: bool  # the planner would try it now


@dataclass
class RouteCard:
    """A model's route in order, with warnings about the whole route and the channels it could add."""

    model_id: str
    model_name: str
    published: bool
    steps: list[StepView]
    addable: list[tuple[str, str]]  # (name, label) of channels not in the route
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # a refused change, shown on the card
    notice: str | None = None  # what the last change did, read out to screen readers

    @property
    def dom_id(self) -> str:
        """An element id for the card; model ids may hold dots and slashes, which CSS selectors would misread."""
        return "route-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.model_id)

    @property
    def order(self) -> list[str]:
        return [step.name for step in self.steps]

    def moved(self, index: int, offset: int) -> list[str]:
        """The order with the step at index (from 0) swapped with its neighbour above (-1) or below (+1)."""
        order = self.order
        order[index], order[index + offset] = order[index + offset], order[index]
        return order


@dataclass(frozen=True)
class RoutesBoard:
    """Every route card, and the published models that have no route at all."""

    cards: list[RouteCard]

    @property
    def unrouted(self) -> list[RouteCard]:
        """Published models with no route at all: their requests get 503."""
        return [card for card in self.cards if card.published and not card.steps]


STEP_WARNINGS = {
    ChannelState.KEY_MISSING: "key missing: skipped",
    ChannelState.DISABLED: "disabled: skipped",
    ChannelState.KEY_REJECTED: "key rejected by the upstream",
}


def _step_warnings(status: ChannelStatus, upstream_model: str | None, primary_model: str | None,
                   model_id: str) -> list[str]:
    warnings = []
    if status.state in STEP_WARNINGS:
        warnings.append(STEP_WARNINGS[status.state])
    if status.no_mapping:
        warnings.append(f"no mapping for {model_id}: skipped")
    if status.state == ChannelState.COOLING:
        warnings.append(f"cooling for {status.seconds_left} s")
    if upstream_model and primary_model and undated(upstream_model) != undated(primary_model):
        warnings.append(f"serves {upstream_model}, not the primary's {primary_model}")
    return warnings


def route_card(model_id: str, now: datetime | None = None, channels: list[Channel] | None = None) -> RouteCard:
    """One model's route card, read from the table the gateway routes with."""
    model = db.session.get(Model, model_id)
    if model is None:
        raise RouteNotFound(f"the catalog has no model {model_id!r}")
    now = now or utcnow()
    steps = plan(model_id, list(LANES), now)
    primary_model = steps[0].upstream_model if steps else None
    views = []
    for step in steps:
        status = channel_status(step.channel, model_id, now, step.health)
        warnings = _step_warnings(status, step.upstream_model, primary_model if step.position != steps[0].position
                                  else None, model_id)
        views.append(StepView(step.position, step.channel.id, step.channel.name, step.channel.label,
                              step.channel.lane, step.upstream_model, status, warnings, step.skip is None))
    in_route = {view.channel_id for view in views}
    if channels is None:
        channels = list(db.session.scalars(db.select(Channel).order_by(Channel.name)))
    card = RouteCard(model.id, model.name, model.published, views,
                     [(c.name, c.label) for c in channels if c.id not in in_route])
    if not views:
        card.warnings.append("no route: requests for this model get 503")
    elif not any(view.usable for view in views):
        if any(view.status.configured for view in views):
            card.warnings.append("no usable step now: every step is cooling or its key was rejected; "
                                 "requests probe the soonest one")
        else:
            card.warnings.append("no usable step: every step is disabled, keyless or unmapped; requests get 503")
    if not model.published:
        card.warnings.append("the model is hidden: users cannot call it until it is published")
    return card


def routes_board() -> RoutesBoard:
    """Every routed or published model's card, by model id."""
    shown = set(route_table().routes) | set(db.session.scalars(db.select(Model.id).where(Model.published)))
    channels = list(db.session.scalars(db.select(Channel).order_by(Channel.name)))
    now = utcnow()
    return RoutesBoard([route_card(model_id, now, channels) for model_id in sorted(shown, key=str.casefold)])


# ---- Changing routes ----------------------------------------------------------------------------------------

def _locked_route(model_id: str) -> list[RouteStep]:
    """The model's steps in order, with its catalog row locked: one route change at a time per model."""
    model = db.session.scalar(db.select(Model).where(Model.id == model_id).with_for_update())
    if model is None:
        raise RouteNotFound(f"the catalog has no model {model_id!r}")
    return list(db.session.scalars(db.select(RouteStep).where(RouteStep.model_id == model_id)
                                   .order_by(RouteStep.position).execution_options(populate_existing=True)))


def _names(steps: list[RouteStep]) -> list[str]:
    return [step.channel.name for step in steps]


def _renumber(steps: list[RouteStep]) -> None:
    """Give the steps positions 1..n in list order without ever holding two at one position."""
    # Positions are unique per model and checked row by row, so move every step out of the way first.
    for index, step in enumerate(steps, start=1):
        step.position = -index
    db.session.flush()
    for index, step in enumerate(steps, start=1):
        step.position = index
    db.session.flush()


def reorder_route(actor_id: int | None, model_id: str, names: list[str]) -> None:
    """Put the route's steps in the given order of channel names: exactly the route's channels, each once."""
    with write_transaction():
        steps = _locked_route(model_id)
        current = _names(steps)
        if sorted(names) != sorted(current) or len(set(names)) != len(names):
            raise RouteError(_order_problem(model_id, names, current))
        if names != current:
            by_name = {step.channel.name: step for step in steps}
            _renumber([by_name[name] for name in names])
            record_change(actor_id, "route_reordered", f"route {model_id}", {"channels": current}, {"channels": names})
    forget_cached_routes()


def _order_problem(model_id: str, names: list[str], current: list[str]) -> str:
    repeated = sorted({name for name in names if names.count(name) > 1})
    unknown = [name for name in dict.fromkeys(names) if name not in current]
    left_out = [name for name in current if name not in names]
    parts = ([f"names {', '.join(repeated)} twice"] if repeated else []) + \
            ([f"names {', '.join(unknown)}, not in the route"] if unknown else []) + \
            ([f"leaves out {', '.join(left_out)}"] if left_out else [])
    return (f"The new order for {model_id} must name exactly its route's channels ({', '.join(current) or 'none'}), "
            f"each once; it {'; it '.join(parts)}. Nothing was changed.")


def add_route_step(actor_id: int | None, model_id: str, channel_name: str) -> None:
    """Append a channel to the model's route as its last backup."""
    with write_transaction():
        steps = _locked_route(model_id)
        channel = db.session.scalar(db.select(Channel).where(Channel.name == channel_name))
        if channel is None:
            raise RouteError(f"There is no channel named {channel_name!r}. Nothing was changed.")
        if channel_name in _names(steps):
            raise RouteError(f"{channel_name} is already in the route of {model_id}. Nothing was changed.")
        db.session.add(RouteStep(model_id=model_id, channel_id=channel.id, position=len(steps) + 1))
        record_change(actor_id, "route_step_added", f"route {model_id}", {"channels": _names(steps)},
                      {"channels": _names(steps) + [channel_name]})
    forget_cached_routes()


def remove_route_step(actor_id: int | None, model_id: str, channel_name: str) -> None:
    """Take a channel out of the model's route; the steps after it move up."""
    with write_transaction():
        steps = _locked_route(model_id)
        before = _names(steps)
        if channel_name not in before:
            raise RouteError(f"{channel_name} is not in the route of {model_id}. Nothing was changed.")
        removed = next(step for step in steps if step.channel.name == channel_name)
        db.session.delete(removed)
        db.session.flush()
        kept = [step for step in steps if step is not removed]
        _renumber(kept)
        record_change(actor_id, "route_step_removed", f"route {model_id}", {"channels": before},
                      {"channels": _names(kept)})
    forget_cached_routes()
