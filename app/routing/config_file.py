"""`waybill config import/export`: models, channels and routes in one TOML file."""
from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import tomli_w

from app.billing.models import LANES
from app.billing.pricing import MAX_PRICE_PER_MTOK_MICROS, MICROS_PER_USD, parse_multiplier, parse_usd
from app.catalog.models import MODES, PROVIDERS, Model
from app.catalog.sync import token_limit, update_prices
from app.database import write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.routing.base_url import base_url_problem
from app.routing.health import clear_key_rejected
from app.routing.keys import resolve_key, store_key
from app.routing.planner import forget_cached_routes
from app.routing.models import Channel, RouteStep

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MODEL_FIELDS = {"id", "name", "provider", "mode", "context_window", "max_output_tokens",
                "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "supports_vision", "supports_tools"}
CHANNEL_FIELDS = {"name", "label", "provider", "base_url", "api_key_env", "api_key", "lane",
                  "price_multiplier", "timeout_s", "enabled", "models"}
ROUTE_FIELDS = {"model", "channels"}
# Beyond this an upstream call ties up a worker and a hold for longer than any answer is worth waiting for.
MAX_TIMEOUT_S = 600
# Longer than any provider's key or model id today; text is bounded so no field can bloat a row or a header.
MAX_API_KEY_LENGTH = 1000
MAX_UPSTREAM_MODEL_LENGTH = 200
MODEL_ID_LENGTH = Model.__table__.c.id.type.length


class ConfigError(ServiceError):
    """A config file that cannot be applied; the message names file, entry and field."""


@dataclass
class ImportSummary:
    """How many entries of each kind an import applied."""

    models: int = 0
    channels: int = 0
    routes: int = 0


class _Checker:
    """Collects every problem of a file so one run reports them all."""

    def __init__(self, filename: str):
        self.filename = filename
        self.found: list[tuple[str, str, str]] = []  # (entry, field, message)

    def fail(self, entry: str, field_name: str, message: str) -> None:
        self.found.append((entry, field_name, message))

    @property
    def problems(self) -> list[str]:
        return [f"{self.filename}: {entry}: field {name!r}: {message}" for entry, name, message in self.found]

    def by_field(self) -> dict[str, list[str]]:
        """The messages keyed by field name, for a form that shows each beside its field."""
        fields: dict[str, list[str]] = {}
        for _entry, name, message in self.found:
            fields.setdefault(name, []).append(message)
        return fields

    def raise_if_any(self) -> None:
        if self.found:
            raise ConfigError("\n".join(self.problems))


def _entry_name(kind: str, index: int, table: dict, key: str) -> str:
    value = table.get(key)
    # A value that would break the message over lines or flood it is left out.
    shown = isinstance(value, str) and value.isprintable() and len(value) <= MODEL_ID_LENGTH
    return f"{kind}[{index}]" + (f" ({value})" if shown else "")


def _text_problem(value: object, max_length: int) -> str | None:
    """What is wrong with a required text value, or None when it is fine."""
    if value is None:
        return "required text is missing"
    if not isinstance(value, str) or not value.strip():
        return "must be non-empty text"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if any(unicodedata.category(char) == "Cc" for char in value):
        return "must not contain control characters"
    return None


def _text_field(check: _Checker, entry: str, table: dict, key: str, max_length: int,
                required: bool = True) -> str | None:
    value = table.get(key)
    if value is None and not required:
        return None
    problem = _text_problem(value, max_length)
    if problem:
        check.fail(entry, key, problem)
        return ""
    return value


def _column_text(check: _Checker, entry: str, table: dict, key: str, column, required: bool = True) -> str | None:
    """Text that fits its database column, which PostgreSQL enforces and SQLite does not."""
    return _text_field(check, entry, table, key, column.type.length, required)


def _int_field(check: _Checker, entry: str, table: dict, key: str) -> int:
    try:
        return token_limit(table.get(key, 0))
    except ValueError as exc:
        check.fail(entry, key, str(exc))
        return 0


def _price_field(check: _Checker, entry: str, table: dict, key: str, required: bool = True) -> int | None:
    if key not in table:
        if required:
            check.fail(entry, key, "required price is missing")
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check.fail(entry, key, f"must be a number of USD per 1M tokens, got {value!r}")
        return None
    try:
        return parse_usd(value, maximum=MAX_PRICE_PER_MTOK_MICROS, kind="a price")
    except ValueError as exc:
        check.fail(entry, key, str(exc))
        return None


def _bool_field(check: _Checker, entry: str, table: dict, key: str, default: bool = True) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        check.fail(entry, key, "must be true or false")
        return default
    return value


def _timeout_field(check: _Checker, entry: str, table: dict) -> float:
    value = table.get("timeout_s", 60)
    # The chained comparison also refuses nan and inf, which TOML can spell.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_S:
        check.fail(entry, "timeout_s", f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_S}, got {value!r}")
        return 60.0
    return float(value)


def _multiplier_field(check: _Checker, entry: str, table: dict) -> str:
    """The multiplier as the exact decimal text a channel stores."""
    value = table.get("price_multiplier", 1.0)
    try:
        # A Decimal comes from a form, never from TOML; it keeps the typed digits exact.
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError(f"must be a number, got {value!r}")
        parse_multiplier(value)
    except ValueError as exc:
        check.fail(entry, "price_multiplier", str(exc))
        return "1"
    return str(Decimal(str(value)))


def _model_map_problem(model_map: object) -> str | None:
    if not isinstance(model_map, dict):
        return "not a table"
    for public_id, upstream_id in model_map.items():
        problem = _text_problem(public_id, MODEL_ID_LENGTH) or _text_problem(upstream_id, MAX_UPSTREAM_MODEL_LENGTH)
        if problem:
            return f"{public_id!r:.80}: {problem}"
    return None


def _model_map_field(check: _Checker, entry: str, table: dict) -> dict[str, str]:
    model_map = table.get("models", {})
    problem = _model_map_problem(model_map)
    if problem:
        check.fail(entry, "models", f"must map public model ids to upstream model ids (text): {problem}")
        return {}
    return dict(model_map)


def _unknown_fields(check: _Checker, entry: str, table: dict, known: set[str]) -> None:
    for key in sorted(set(table) - known):
        check.fail(entry, key, "unknown field")


def _parse_models(check: _Checker, tables: list) -> dict[str, dict]:
    models: dict[str, dict] = {}
    for index, table in enumerate(tables):
        entry = _entry_name("models", index, table, "id")
        _unknown_fields(check, entry, table, MODEL_FIELDS)
        model_id = _column_text(check, entry, table, "id", Model.id)
        provider = _column_text(check, entry, table, "provider", Model.provider)
        if provider and provider not in PROVIDERS:
            check.fail(entry, "provider", f"unknown provider {provider!r} ({', '.join(PROVIDERS)})")
        mode = table.get("mode", "chat")
        if mode not in MODES:
            check.fail(entry, "mode", f"unknown mode {mode!r} ({', '.join(MODES)})")
        if model_id in models:
            check.fail(entry, "id", f"duplicate model id {model_id!r}")
        models[model_id] = {
            "id": model_id,
            "name": _column_text(check, entry, table, "name", Model.name, required=False) or model_id,
            "provider": provider,
            "mode": mode,
            "context_window": _int_field(check, entry, table, "context_window"),
            "max_output_tokens": _int_field(check, entry, table, "max_output_tokens"),
            "input_per_mtok": _price_field(check, entry, table, "input_per_mtok"),
            "output_per_mtok": _price_field(check, entry, table, "output_per_mtok"),
            "cached_input_per_mtok": _price_field(check, entry, table, "cached_input_per_mtok", required=False),
            "supports_vision": _bool_field(check, entry, table, "supports_vision"),
            "supports_tools": _bool_field(check, entry, table, "supports_tools"),
        }
    return models


def _parse_channels(check: _Checker, tables: list) -> dict[str, dict]:
    channels: dict[str, dict] = {}
    for index, table in enumerate(tables):
        entry = _entry_name("channels", index, table, "name")
        values = _parse_channel(check, entry, table)
        if values["name"] in channels:
            check.fail(entry, "name", f"duplicate channel name {values['name']!r}")
        channels[values["name"]] = values
    return channels


def check_channel(table: dict) -> tuple[dict, dict[str, list[str]]]:
    """Check one channel spelled as a config file's [[channels]] table: (its values, problems by field).

    The admin form's channels pass the same checks and bounds as imported ones.
    """
    check = _Checker("form")
    values = _parse_channel(check, "channel", table)
    return values, check.by_field()


def _parse_channel(check: _Checker, entry: str, table: dict) -> dict:
    """One [[channels]] table's values, every problem reported to check."""
    _unknown_fields(check, entry, table, CHANNEL_FIELDS)
    name = _column_text(check, entry, table, "name", Channel.name)
    if name and not SLUG.fullmatch(name):
        check.fail(entry, "name", "must be a slug: lowercase letters, digits, '.', '_' or '-'")
    provider = _column_text(check, entry, table, "provider", Channel.provider)
    if provider and provider not in PROVIDERS:
        check.fail(entry, "provider", f"unknown provider {provider!r} ({', '.join(PROVIDERS)})")
    lane = _column_text(check, entry, table, "lane", Channel.lane)
    if lane and lane not in LANES:
        check.fail(entry, "lane", f"unknown lane {lane!r} (official or routed)")
    base_url = _column_text(check, entry, table, "base_url", Channel.base_url)
    problem = base_url_problem(base_url) if base_url else None
    if problem:
        check.fail(entry, "base_url", problem)
    if "api_key" in table and "api_key_env" in table:
        check.fail(entry, "api_key", "give api_key or api_key_env, not both")
    api_key = _text_field(check, entry, table, "api_key", MAX_API_KEY_LENGTH, required=False)
    api_key_env = _column_text(check, entry, table, "api_key_env", Channel.api_key_env, required=False)
    return {
        "name": name, "label": _column_text(check, entry, table, "label", Channel.label, required=False) or name,
        "provider": provider, "base_url": base_url, "api_key": api_key, "api_key_env": api_key_env,
        "lane": lane, "price_multiplier": _multiplier_field(check, entry, table),
        "timeout_s": _timeout_field(check, entry, table), "enabled": _bool_field(check, entry, table, "enabled"),
        "model_map": _model_map_field(check, entry, table),
    }


def _parse_routes(check: _Checker, tables: list, model_ids: set[str], channel_names: set[str]) -> dict[str, list[str]]:
    routes: dict[str, list[str]] = {}
    for index, table in enumerate(tables):
        entry = _entry_name("routes", index, table, "model")
        _unknown_fields(check, entry, table, ROUTE_FIELDS)
        model_id = _column_text(check, entry, table, "model", Model.id)
        if model_id and model_id not in model_ids:
            check.fail(entry, "model", f"unknown model {model_id!r}")
        if model_id in routes:
            check.fail(entry, "model", f"duplicate route for {model_id!r}")
        names = table.get("channels")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            check.fail(entry, "channels", "must be a non-empty list of channel names")
            continue
        for name in names:
            if name not in channel_names:
                check.fail(entry, "channels", f"unknown channel {name!r}")
        if len(set(names)) != len(names):
            check.fail(entry, "channels", "names a channel twice")
        routes[model_id] = names
    return routes


def _tables(check: _Checker, document: dict, key: str) -> list:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        check.fail(key, key, "must be an array of tables ([[" + key + "]])")
        return []
    return value


def import_config(path: str | Path) -> ImportSummary:
    """Validate the whole file, then upsert its models, channels and routes in one transaction."""
    filename = str(path)
    try:
        document = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{filename}: not valid TOML: {exc}") from None
    return apply_config(document, filename)


def apply_config(document: dict, source: str) -> ImportSummary:
    """Validate a parsed config document, then apply all of it or nothing."""
    check = _Checker(source)
    for key in sorted(set(document) - {"models", "channels", "routes"}):
        check.fail(key, key, "unknown top-level section")
    models = _parse_models(check, _tables(check, document, "models"))
    channels = _parse_channels(check, _tables(check, document, "channels"))
    known_models = set(models) | set(db.session.scalars(db.select(Model.id)))
    known_channels = set(channels) | set(db.session.scalars(db.select(Channel.name)))
    routes = _parse_routes(check, _tables(check, document, "routes"), known_models, known_channels)
    check.raise_if_any()

    summary = ImportSummary()
    with write_transaction():
        for values in models.values():
            _upsert_model(values, source)
            summary.models += 1
        for values in channels.values():
            _upsert_channel(values)
            summary.channels += 1
        db.session.flush()
        for model_id, names in routes.items():
            _replace_route(model_id, names)
            summary.routes += 1
    forget_cached_routes()
    return summary


def _upsert_model(values: dict, source: str) -> None:
    model = db.session.get(Model, values["id"])
    if model is None:
        model = Model(id=values["id"])
        db.session.add(model)
    else:
        update_prices(model, values, source)
    for key, value in values.items():
        setattr(model, key, value)
    model.published = True  # a config file is how a platform publishes a model


def _upsert_channel(values: dict) -> None:
    channel = db.session.scalar(db.select(Channel).where(Channel.name == values["name"]))
    if channel is None:
        channel = Channel(name=values["name"])
        db.session.add(channel)
    api_key, api_key_env = values.pop("api_key"), values.pop("api_key_env")
    channel.price_multiplier_text = values.pop("price_multiplier")
    for key, value in values.items():
        setattr(channel, key, value)
    if api_key and (channel.api_key_encrypted is None or resolve_key(channel) != api_key):
        store_key(channel, api_key)
        channel.api_key_env = None
        if channel.id is not None:
            clear_key_rejected(channel.id)  # a new key deserves a new try
    elif api_key_env:
        channel.api_key_env = api_key_env
        channel.api_key_encrypted = channel.api_key_last4 = None


def _replace_route(model_id: str, names: list[str]) -> None:
    db.session.execute(db.delete(RouteStep).where(RouteStep.model_id == model_id))
    db.session.flush()
    ids = dict(db.session.execute(db.select(Channel.name, Channel.id).where(Channel.name.in_(names))).all())
    for position, name in enumerate(names, start=1):
        db.session.add(RouteStep(model_id=model_id, channel_id=ids[name], position=position))


def _usd_number(micros: int) -> float | int:
    """USD per 1M tokens as the shortest TOML number that reads back to the same micro-USD."""
    return float(Decimal(micros) / MICROS_PER_USD)


def export_config() -> str:
    """Render published models, every channel and every route as the TOML import reads."""
    models = []
    for model in db.session.scalars(db.select(Model).where(Model.published).order_by(Model.id)):
        table = {"id": model.id, "name": model.name, "provider": model.provider, "mode": model.mode,
                 "context_window": model.context_window, "max_output_tokens": model.max_output_tokens,
                 "input_per_mtok": _usd_number(model.input_per_mtok),
                 "output_per_mtok": _usd_number(model.output_per_mtok)}
        if model.cached_input_per_mtok is not None:
            table["cached_input_per_mtok"] = _usd_number(model.cached_input_per_mtok)
        # Capabilities default to true; only a limit is worth a line.
        for flag in ("supports_vision", "supports_tools"):
            if not getattr(model, flag):
                table[flag] = False
        models.append(table)
    channels = []
    for channel in db.session.scalars(db.select(Channel).order_by(Channel.id)):
        table = {"name": channel.name, "label": channel.label, "provider": channel.provider,
                 "base_url": channel.base_url}
        # Keys are write-only: an env reference is exported, a stored key never is.
        if channel.api_key_env:
            table["api_key_env"] = channel.api_key_env
        timeout = channel.timeout_s
        table.update({"lane": channel.lane, "price_multiplier": float(Decimal(channel.price_multiplier_text)),
                      "timeout_s": int(timeout) if timeout == int(timeout) else timeout,
                      "enabled": channel.enabled, "models": dict(sorted(channel.model_map.items()))})
        channels.append(table)
    routes = []
    steps = db.session.execute(
        db.select(RouteStep.model_id, Channel.name).join(Channel)
        .order_by(RouteStep.model_id, RouteStep.position)
    ).all()
    for model_id, name in steps:
        if not routes or routes[-1]["model"] != model_id:
            routes.append({"model": model_id, "channels": []})
        routes[-1]["channels"].append(name)
    return tomli_w.dumps({"models": models, "channels": channels, "routes": routes})
