"""Catalog sync from LiteLLM's model_prices_and_context_window.json format."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import requests

from app.billing.pricing import MAX_PRICE_PER_MTOK_MICROS, format_usd, plain_number, usd_limit
from app.catalog.models import Model, PriceChange
from app.database import write_transaction
from app.errors import ServiceError
from app.extensions import db

SHIPPED_SNAPSHOT = Path(__file__).parent / "data" / "model_prices.json"
# LiteLLM's provider names for the vendors Waybill speaks to natively.
PROVIDER_OF_LITELLM = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
PRICE_FIELDS = {
    "input_per_mtok": "input_cost_per_token",
    "output_per_mtok": "output_cost_per_token",
    "cached_input_per_mtok": "cache_read_input_token_cost",
}
MICRO_USD_PER_MTOK_PER_USD_PER_TOKEN = Decimal(10) ** 12
# The largest context window or max output a model may claim: past today's largest (10M), and small
# enough that a hold sized by it stays a sane amount of money.
MAX_TOKEN_LIMIT = 10_000_000
MODEL_ID_LENGTH = Model.__table__.c.id.type.length


@dataclass
class SyncReport:
    """What a sync changed, one line per model touched."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable lines, ending with a summary."""
        summary = f"{len(self.added)} added, {len(self.changed)} changed, {self.unchanged} unchanged"
        return [*self.added, *self.changed, *self.skipped,
                summary + (f", {len(self.skipped)} skipped" if self.skipped else "")]


def per_token_to_per_mtok(cost: float | int | str) -> int:
    """Convert LiteLLM's USD per token into micro-USD per 1M tokens, at most the price maximum."""
    value = plain_number(cost, "a price") * MICRO_USD_PER_MTOK_PER_USD_PER_TOKEN
    if value > MAX_PRICE_PER_MTOK_MICROS:
        raise ValueError(f"price {cost!r} per token is more than the maximum of "
                         f"{usd_limit(MAX_PRICE_PER_MTOK_MICROS)} per 1M tokens")
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def token_limit(value: object) -> int:
    """A context window or max output: a whole number from 0 to MAX_TOKEN_LIMIT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKEN_LIMIT:
        raise ValueError(f"must be a whole number from 0 to {MAX_TOKEN_LIMIT}, got {value!r}")
    return value


def load_source(source: str | None) -> tuple[str, dict]:
    """Read the JSON from a file path or an http(s) URL; default to the shipped snapshot."""
    name = source or str(SHIPPED_SNAPSHOT)
    try:
        if name.startswith(("http://", "https://")):
            response = requests.get(name, timeout=30)
            response.raise_for_status()
            data = response.json()
        else:
            data = json.loads(Path(name).read_text())
    except (OSError, ValueError, requests.RequestException) as exc:
        raise ServiceError(f"{name}: cannot read catalog: {exc}") from None
    if not isinstance(data, dict):
        raise ServiceError(f"{name}: expected a JSON object of models")
    return name, data


def parse_entry(key: str, entry: dict) -> dict | None:
    """Turn one LiteLLM entry into Model column values, or None when Waybill does not serve it."""
    litellm_provider = entry.get("litellm_provider")
    provider = PROVIDER_OF_LITELLM.get(litellm_provider) if isinstance(litellm_provider, str) else None
    mode = entry.get("mode")
    if provider is None or mode not in ("chat", "embedding") or "input_cost_per_token" not in entry:
        return None
    model_id = key.split("/", 1)[1] if key.startswith(f"{provider}/") else key
    if len(model_id) > MODEL_ID_LENGTH or not model_id.isprintable():
        raise ValueError(f"a model id is printable text of at most {MODEL_ID_LENGTH} characters")
    values = {
        "id": model_id,
        "provider": provider,
        "mode": mode,
        "context_window": _limit(entry, "max_input_tokens") or _limit(entry, "max_tokens"),
        "max_output_tokens": _limit(entry, "max_output_tokens"),
        "supports_vision": entry.get("supports_vision") is True,
        "supports_tools": entry.get("supports_function_calling") is True,
    }
    for column, litellm_field in PRICE_FIELDS.items():
        raw = entry.get(litellm_field)
        try:
            values[column] = None if raw is None else per_token_to_per_mtok(raw)
        except ValueError as exc:
            raise ValueError(f"{litellm_field}: {exc}") from None
    if values["output_per_mtok"] is None:
        values["output_per_mtok"] = 0
    return values


def _limit(entry: dict, litellm_field: str) -> int:
    try:
        return token_limit(entry.get(litellm_field) or 0)
    except ValueError as exc:
        raise ValueError(f"{litellm_field}: {exc}") from None


def describe_price(values: dict) -> str:
    """Render a model's prices in USD per 1M tokens."""
    parts = [f"input ${format_usd(values['input_per_mtok'], 4)}", f"output ${format_usd(values['output_per_mtok'], 4)}"]
    if values.get("cached_input_per_mtok") is not None:
        parts.append(f"cached ${format_usd(values['cached_input_per_mtok'], 4)}")
    return " ".join(parts) + " per 1M"


def sync_catalog(source: str | None = None) -> SyncReport:
    """Upsert prices and limits; new models stay hidden; every price change is kept as history."""
    name, data = load_source(source)
    parsed = []
    report = SyncReport()
    for key, entry in data.items():
        if not isinstance(entry, dict):
            continue
        # One broken entry in a third-party file must not hold back every other price; it keeps its last good one.
        try:
            values = parse_entry(key, entry)
        except ValueError as exc:
            report.skipped.append(f"skipped {key!r:.80}: {exc}")
            continue
        if values:
            parsed.append(values)
    with write_transaction():
        existing = {m.id: m for m in db.session.scalars(db.select(Model))}
        for values in parsed:
            model = existing.get(values["id"])
            if model is None:
                db.session.add(Model(name=values["id"], published=False, **values))
                report.added.append(f"added {values['id']} (hidden): {describe_price(values)}")
                continue
            changes = _apply(model, values, name)
            if changes:
                report.changed.append(f"changed {model.id}: " + ", ".join(changes))
            else:
                report.unchanged += 1
    return report


def update_prices(model: Model, values: dict, source: str) -> list[str]:
    """Set a model's prices in place, keeping a PriceChange row for each one that changed."""
    changes = []
    for column in PRICE_FIELDS:
        old, new = getattr(model, column), values[column]
        if old != new:
            db.session.add(PriceChange(model_id=model.id, field=column, old_per_mtok=old,
                                       new_per_mtok=new, source=source[:300]))
            label = column.removesuffix("_per_mtok").replace("_", " ")
            changes.append(f"{label} {_usd_or_none(old)} -> {_usd_or_none(new)} per 1M")
            setattr(model, column, new)
    return changes


def _apply(model: Model, values: dict, source: str) -> list[str]:
    """Update one model's prices and limits in place."""
    changes = update_prices(model, values, source)
    for column in ("context_window", "max_output_tokens", "mode", "supports_vision", "supports_tools"):
        if getattr(model, column) != values[column]:
            changes.append(f"{column} {getattr(model, column)} -> {values[column]}")
            setattr(model, column, values[column])
    return changes


def _usd_or_none(micros: int | None) -> str:
    return "none" if micros is None else f"${format_usd(micros, 4)}"
