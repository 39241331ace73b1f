"""Catalog sync from LiteLLM's model_prices_and_context_window.json format: compute a diff, then apply it."""
from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from app.audit_trail.service import record_change
from app.billing.pricing import MAX_PRICE_PER_MTOK_MICROS, format_usd, plain_number, usd_limit
from app.catalog.models import Model, PriceChange
from app.database import write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.routing.base_url import base_url_problem

SHIPPED_SNAPSHOT = Path(__file__).parent / "data" / "model_prices.json"
SHIPPED_NAME = "the shipped snapshot"
# LiteLLM's provider names for the vendors Waybill speaks to natively.
PROVIDER_OF_LITELLM = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
PRICE_FIELDS = {
    "input_per_mtok": "input_cost_per_token",
    "output_per_mtok": "output_cost_per_token",
    "cached_input_per_mtok": "cache_read_input_token_cost",
}
LIMIT_FIELDS = ("context_window", "max_output_tokens", "mode", "supports_vision", "supports_tools")
MICRO_USD_PER_MTOK_PER_USD_PER_TOKEN = Decimal(10) ** 12
# The largest context window or max output a model may claim: past today's largest (10M), and small
# enough that a hold sized by it stays a sane amount of money.
MAX_TOKEN_LIMIT = 10_000_000
MODEL_ID_LENGTH = Model.__table__.c.id.type.length
# LiteLLM's whole file is about 1.5 MB; a source many times that is not a price list.
MAX_SOURCE_BYTES = 8 * 1024 * 1024
FETCH_TIMEOUT_S = (5, 20)
MAX_REDIRECTS = 3


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


@dataclass(frozen=True)
class FieldChange:
    """One column of one model, from its current value to the source's."""

    column: str
    old: int | str | bool | None
    new: int | str | bool | None

    @property
    def is_price(self) -> bool:
        """A price column: its change is kept as PriceChange history."""
        return self.column in PRICE_FIELDS

    def describe(self) -> str:
        """The change in the words the CLI prints."""
        if self.is_price:
            label = self.column.removesuffix("_per_mtok").replace("_", " ")
            return f"{label} {_usd_or_none(self.old)} -> {_usd_or_none(self.new)} per 1M"
        return f"{self.column} {self.old} -> {self.new}"


@dataclass
class CatalogDiff:
    """What applying a source would do: models to add, models to change field by field, entries skipped."""

    source: str
    added: list[dict] = field(default_factory=list)
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)
    changed_values: dict[str, dict] = field(default_factory=dict)
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when applying would change nothing."""
        return not self.added and not self.changed

    def fingerprint(self) -> list:
        """The diff's substance, comparable between a preview and the moment it is applied."""
        substance = [sorted(values["id"] for values in self.added),
                     sorted([model_id, [asdict(change) for change in changes]] for model_id, changes in self.changed.items())]
        return json.loads(json.dumps(substance))  # as it reads back from the signed payload

    def to_payload(self) -> dict:
        """What an admin's preview hands back to apply: the source and the entries that differ, JSON-ready."""
        return {"source": self.source, "added": self.added, "changed": list(self.changed_values.values()),
                "fingerprint": self.fingerprint()}


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
    if name.startswith(("http://", "https://")):
        return name, parse_source(name, fetch_url(name))
    try:
        raw = Path(name).read_bytes()
    except OSError as exc:
        raise ServiceError(f"{name}: cannot read catalog: {exc}") from None
    return name, parse_source(name, raw)


def parse_source(name: str, raw: bytes) -> dict:
    """A source's bytes as the JSON object of models it must be."""
    if len(raw) > MAX_SOURCE_BYTES:
        raise ServiceError(f"{name}: larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MB: not a price list")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ServiceError(f"{name}: cannot read catalog: {exc}") from None
    if not isinstance(data, dict):
        raise ServiceError(f"{name}: expected a JSON object of models")
    return data


def fetch_url(url: str) -> bytes:
    """GET an http(s) URL with a timeout and a size cap, following redirects only on the same host."""
    host = urlsplit(url).hostname
    for _ in range(MAX_REDIRECTS + 1):
        _refuse_unsafe(url, host)
        try:
            with requests.get(url, timeout=FETCH_TIMEOUT_S, stream=True, allow_redirects=False) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                response.raise_for_status()
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_SOURCE_BYTES:
                        raise ServiceError(f"{url}: larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MB: not a price list")
                return bytes(body)
        except requests.RequestException as exc:
            raise ServiceError(f"{url}: cannot read catalog: {exc}") from None
    raise ServiceError(f"{url}: too many redirects")


def _refuse_unsafe(url: str, host: str | None) -> None:
    """Refuse what a channel's base URL may not be, a host's name resolving there, or a redirect to another host."""
    problem = base_url_problem(url)
    if problem:
        raise ServiceError(f"the URL {problem}")
    parts = urlsplit(url)
    if parts.hostname != host:
        raise ServiceError(f"the URL redirects to another host ({parts.hostname}): refused")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except OSError as exc:
        raise ServiceError(f"{url}: cannot resolve {parts.hostname}: {exc}") from None
    for address in addresses:
        # A name is checked by what it resolves to as well: a DNS record may point at the metadata service.
        problem = base_url_problem(f"http://[{address}]/" if ":" in address else f"http://{address}/")
        if problem:
            raise ServiceError(f"the URL's host {problem}")


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


def parse_entries(data: dict) -> tuple[list[dict], list[str]]:
    """The entries Waybill serves as Model values, and the broken ones with why each was skipped."""
    parsed, skipped = [], []
    for key, entry in data.items():
        if not isinstance(entry, dict):
            continue
        # One broken entry in a third-party file must not hold back every other price; it keeps its last good one.
        try:
            values = parse_entry(key, entry)
        except ValueError as exc:
            skipped.append(f"skipped {key!r:.80}: {exc}")
            continue
        if values:
            parsed.append(values)
    return parsed, skipped


def compute_diff(source: str, entries: list[dict], skipped: list[str] | None = None) -> CatalogDiff:
    """Compare parsed entries with the catalog as it is now, writing nothing."""
    diff = CatalogDiff(source=source, skipped=list(skipped or []))
    existing = {m.id: m for m in db.session.scalars(db.select(Model))}
    for values in entries:
        model = existing.get(values["id"])
        if model is None:
            diff.added.append(values)
            continue
        changes = [FieldChange(column, getattr(model, column), values[column])
                   for column in (*PRICE_FIELDS, *LIMIT_FIELDS) if getattr(model, column) != values[column]]
        if changes:
            diff.changed[model.id] = changes
            diff.changed_values[model.id] = values
        else:
            diff.unchanged += 1
    return diff


def diff_of_source(source: str | None) -> CatalogDiff:
    """Read a file path or URL (default: the shipped snapshot) and compare it with the catalog."""
    name, data = load_source(source)
    return compute_diff(name, *parse_entries(data))


def diff_of_bytes(name: str, raw: bytes) -> CatalogDiff:
    """Compare an uploaded file's bytes with the catalog."""
    return compute_diff(name, *parse_entries(parse_source(name, raw)))


def update_prices(model: Model, values: dict, source: str) -> list[str]:
    """Set a model's prices in place, keeping a PriceChange row for each one that changed."""
    changes = [FieldChange(column, getattr(model, column), values[column])
               for column in PRICE_FIELDS if getattr(model, column) != values[column]]
    for change in changes:
        _set(model, change, source)
    return [change.describe() for change in changes]


def _set(model: Model, change: FieldChange, source: str) -> None:
    """Set one column, keeping history when it is a price."""
    if change.is_price:
        db.session.add(PriceChange(model_id=model.id, field=change.column, old_per_mtok=change.old,
                                   new_per_mtok=change.new, source=source[:300]))
    setattr(model, change.column, change.new)


def apply_diff(diff: CatalogDiff, actor_id: int | None = None) -> SyncReport:
    """Apply a diff: add new models hidden, update changed ones with PriceChange history, and audit the sync."""
    report = SyncReport(unchanged=diff.unchanged, skipped=list(diff.skipped))
    with write_transaction():
        for values in diff.added:
            db.session.add(Model(name=values["id"], published=False, **values))
            report.added.append(f"added {values['id']} (hidden): {describe_price(values)}")
        for model_id, changes in diff.changed.items():
            model = db.session.get(Model, model_id)
            for change in changes:
                _set(model, change, diff.source)
            report.changed.append(f"changed {model_id}: " + ", ".join(change.describe() for change in changes))
        if not diff.empty:
            record_change(actor_id, "catalog_synced", f"catalog from {diff.source}", None,
                          {"added": len(diff.added), "changed": len(diff.changed), "unchanged": diff.unchanged,
                           "skipped": len(diff.skipped), "source": diff.source[:300]})
    return report


def apply_previewed(payload: dict, actor_id: int | None) -> SyncReport:
    """Apply exactly the diff an admin previewed, or refuse if the catalog changed since the preview."""
    with write_transaction():
        diff = compute_diff(payload["source"], [*payload["added"], *payload["changed"]])
        if diff.fingerprint() != payload["fingerprint"]:
            raise ServiceError("The catalog changed since this preview; nothing was applied. Preview the sync again.")
        return apply_diff(diff, actor_id)


def sync_catalog(source: str | None = None) -> SyncReport:
    """Upsert prices and limits; new models stay hidden; every price change is kept as history."""
    name, data = load_source(source)
    entries, skipped = parse_entries(data)
    with write_transaction():
        return apply_diff(compute_diff(name, entries, skipped))


def set_published(actor_id: int | None, model_id: str, published: bool) -> Model:
    """Publish or hide a model, audited; the caller forgets cached routes."""
    model = db.session.get(Model, model_id)
    if model is None:
        raise ServiceError(f"no model {model_id!r} in the catalog")
    if model.published == published:
        return model
    with write_transaction():
        model = db.session.get(Model, model_id)
        model.published = published
        record_change(actor_id, "model_published" if published else "model_hidden", f"model {model_id}",
                      {"published": not published}, {"published": published})
    return model


def _usd_or_none(micros: int | None) -> str:
    return "none" if micros is None else f"${format_usd(micros, 4)}"
