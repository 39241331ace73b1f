"""`waybill config import/export`: models, channels and routes in one TOML file."""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import tomli_w

from app.billing.models import LANES
from app.billing.pricing import MICROS_PER_USD, parse_multiplier, parse_usd
from app.catalog.models import MODES, PROVIDERS, Model
from app.catalog.sync import update_prices
from app.database import write_transaction
from app.errors import ServiceError
from app.extensions import db
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
        self.problems: list[str] = []

    def fail(self, entry: str, field_name: str, message: str) -> None:
        self.problems.append(f"{self.filename}: {entry}: field {field_name!r}: {message}")

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError("\n".join(self.problems))


def _entry_name(kind: str, index: int, table: dict, key: str) -> str:
    value = table.get(key)
    return f"{kind}[{index}]" + (f" ({value})" if isinstance(value, str) else "")


def _require_str(check: _Checker, entry: str, table: dict, key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        check.fail(entry, key, "required text is missing" if value is None else "must be non-empty text")
        return ""
    return value


def _int_field(check: _Checker, entry: str, table: dict, key: str, default: int = 0) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        check.fail(entry, key, f"must be a whole number >= 0, got {value!r}")
        return 0
    return value


def _price_field(check: _Checker, entry: str, table: dict, key: str, required: bool = True) -> int | None:
    if key not in table:
        if required:
            check.fail(entry, key, "required price is missing")
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        check.fail(entry, key, f"must be a number of USD per 1M tokens, got {value!r}")
        return None
    if value < 0:
        check.fail(entry, key, f"price cannot be negative, got {value}")
        return None
    try:
        return parse_usd(value)
    except ValueError as exc:
        check.fail(entry, key, str(exc))
        return None


def _bool_field(check: _Checker, entry: str, table: dict, key: str, default: bool = True) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        check.fail(entry, key, "must be true or false")
        return default
    return value


def _unknown_fields(check: _Checker, entry: str, table: dict, known: set[str]) -> None:
    for key in sorted(set(table) - known):
        check.fail(entry, key, "unknown field")


def _parse_models(check: _Checker, tables: list) -> dict[str, dict]:
    models: dict[str, dict] = {}
    for index, table in enumerate(tables):
        entry = _entry_name("models", index, table, "id")
        _unknown_fields(check, entry, table, MODEL_FIELDS)
        model_id = _require_str(check, entry, table, "id")
        provider = _require_str(check, entry, table, "provider")
        if provider and provider not in PROVIDERS:
            check.fail(entry, "provider", f"unknown provider {provider!r} ({', '.join(PROVIDERS)})")
        mode = table.get("mode", "chat")
        if mode not in MODES:
            check.fail(entry, "mode", f"unknown mode {mode!r} ({', '.join(MODES)})")
        if model_id in models:
            check.fail(entry, "id", f"duplicate model id {model_id!r}")
        models[model_id] = {
            "id": model_id,
            "name": table.get("name") or model_id,
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
        _unknown_fields(check, entry, table, CHANNEL_FIELDS)
        name = _require_str(check, entry, table, "name")
        if name and not SLUG.match(name):
            check.fail(entry, "name", "must be a slug: lowercase letters, digits, '.', '_' or '-'")
        if name in channels:
            check.fail(entry, "name", f"duplicate channel name {name!r}")
        provider = _require_str(check, entry, table, "provider")
        if provider and provider not in PROVIDERS:
            check.fail(entry, "provider", f"unknown provider {provider!r} ({', '.join(PROVIDERS)})")
        lane = _require_str(check, entry, table, "lane")
        if lane and lane not in LANES:
            check.fail(entry, "lane", f"unknown lane {lane!r} (official or routed)")
        base_url = _require_str(check, entry, table, "base_url")
        if base_url and not base_url.startswith(("http://", "https://")):
            check.fail(entry, "base_url", "must start with http:// or https://")
        if "api_key" in table and "api_key_env" in table:
            check.fail(entry, "api_key", "give api_key or api_key_env, not both")
        for key in ("api_key", "api_key_env"):
            if key in table and (not isinstance(table[key], str) or not table[key]):
                check.fail(entry, key, "must be non-empty text")
        multiplier = table.get("price_multiplier", 1.0)
        try:
            if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
                raise ValueError(f"must be a number, got {multiplier!r}")
            parse_multiplier(multiplier)
        except ValueError as exc:
            check.fail(entry, "price_multiplier", str(exc))
        timeout = table.get("timeout_s", 60)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            check.fail(entry, "timeout_s", f"must be a number of seconds > 0, got {timeout!r}")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            check.fail(entry, "enabled", "must be true or false")
        model_map = table.get("models", {})
        if not isinstance(model_map, dict) or not all(
            isinstance(v, str) and v for v in model_map.values()
        ):
            check.fail(entry, "models", "must map public model ids to upstream model ids (text)")
            model_map = {}
        channels[name] = {
            "name": name, "label": table.get("label") or name, "provider": provider,
            "base_url": base_url, "api_key": table.get("api_key"), "api_key_env": table.get("api_key_env"),
            "lane": lane, "price_multiplier": str(Decimal(str(multiplier))) if isinstance(multiplier, (int, float)) else "1",
            "timeout_s": float(timeout) if isinstance(timeout, (int, float)) else 60.0,
            "enabled": enabled, "model_map": dict(model_map),
        }
    return channels


def _parse_routes(check: _Checker, tables: list, model_ids: set[str], channel_names: set[str]) -> dict[str, list[str]]:
    routes: dict[str, list[str]] = {}
    for index, table in enumerate(tables):
        entry = _entry_name("routes", index, table, "model")
        _unknown_fields(check, entry, table, ROUTE_FIELDS)
        model_id = _require_str(check, entry, table, "model")
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
