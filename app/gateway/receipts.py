"""Reading receipts back: the JSON of the contract, the owner-only lookup, the list's filters and the words."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Iterable, Mapping

from flask_sqlalchemy.pagination import Pagination

from app.billing.models import LedgerEntry, Wallet
from app.billing.pricing import MICROS_PER_USD, format_usd
from app.database import utcnow
from app.extensions import db
from app.gateway.models import Attempt, Receipt


def find_receipt(user_id: int, receipt_id: str) -> Receipt | None:
    """The receipt if it belongs to this user; None for anyone else's, so callers answer 404."""
    receipt = db.session.get(Receipt, receipt_id)
    return receipt if receipt is not None and receipt.user_id == user_id else None


def others_used_channel(channel: str, key_id: int | None, since: datetime) -> bool:
    """Whether requests of keys other than this one reached the channel since then (skips aside)."""
    other_key = Receipt.api_key_id.is_(None) | (Receipt.api_key_id != key_id) if key_id is not None \
        else Receipt.api_key_id.is_not(None)
    return db.session.scalar(
        db.select(Attempt.id).join(Receipt, Receipt.id == Attempt.receipt_id)
        .where(Attempt.channel == channel, Attempt.outcome != "skipped", other_key, Receipt.created_at > since)
        .limit(1)) is not None


def applied_usd(micros_per_mtok: int | None, multiplier: str | None) -> str | None:
    """An official price times the channel multiplier, as a USD-per-1M string."""
    if micros_per_mtok is None:
        return None
    exact = Fraction(micros_per_mtok) * Fraction(multiplier or "1") / MICROS_PER_USD
    value = Decimal(exact.numerator) / Decimal(exact.denominator)
    return format(value.quantize(Decimal("0.000000001")).normalize(), "f")


def receipt_json(receipt: Receipt) -> dict:
    """The receipt as GET /v1/receipts/{id} returns it."""
    route = None
    if receipt.route_channel:
        route = {"channel": receipt.route_channel, "label": receipt.route_label, "lane": receipt.route_lane,
                 "position": receipt.route_position}
    price = None
    if receipt.input_per_mtok is not None:
        price = {"input_per_mtok": applied_usd(receipt.input_per_mtok, receipt.multiplier),
                 "output_per_mtok": applied_usd(receipt.output_per_mtok, receipt.multiplier),
                 "cached_input_per_mtok": applied_usd(receipt.cached_input_per_mtok, receipt.multiplier),
                 "multiplier": format(Decimal(Fraction(receipt.multiplier).numerator)
                                      / Decimal(Fraction(receipt.multiplier).denominator), "f"),
                 "model": receipt.price_model}
    ledger = None
    if receipt.ledger_entry_id is not None:
        entry, kind = db.session.execute(
            db.select(LedgerEntry, Wallet.kind).join(Wallet, Wallet.id == LedgerEntry.wallet_id)
            .where(LedgerEntry.id == receipt.ledger_entry_id)).one()
        ledger = {"id": entry.id, "wallet": kind, "amount_usd": format_usd(entry.amount),
                  "balance_after_usd": format_usd(entry.balance_after)}
    return {
        "id": receipt.id,
        "object": "waybill.receipt",
        "created_at": receipt.created_at.isoformat() + "Z",
        "status": receipt.status,
        "failure_stage": receipt.failure_stage,
        "requested_model": receipt.requested_model,
        "upstream_model": receipt.upstream_model,
        "stream": receipt.stream,
        "fallback_used": receipt.fallback_used,
        "route": route,
        "settlement": receipt.settlement,
        "usage": {"prompt_tokens": receipt.prompt_tokens, "completion_tokens": receipt.completion_tokens,
                  "cached_tokens": receipt.cached_tokens, "source": receipt.usage_source},
        "price": price,
        "charge_usd": format_usd(receipt.charge),
        "latency_ms": receipt.latency_ms,
        "ttfb_ms": receipt.ttfb_ms,
        "flags": list(receipt.flags or []),
        "error": receipt.error_message,
        "attempts": [{"position": a.position, "channel": a.channel, "label": a.label, "lane": a.lane,
                      "provider": a.provider, "upstream_model": a.upstream_model, "served_model": a.served_model,
                      "outcome": a.outcome, "http_status": a.http_status, "error_class": a.error_class,
                      "detail": a.detail, "latency_ms": a.latency_ms} for a in receipt.attempts],
        "ledger_entry": ledger,
    }


# ---- Reading receipts in the browser: the list's filters, and the words of the timeline. ----

STATUSES = ("succeeded", "failed", "interrupted", "rejected")
LANES = ("official", "routed")
PERIODS = {"24h": timedelta(hours=24), "30d": timedelta(days=30)}
PER_PAGE = 25


@dataclass(frozen=True)
class ReceiptFilters:
    """The receipts list's filters, as the query string gives them; unknown values are dropped with a note."""

    status: str | None = None
    model: str | None = None
    fallback: bool | None = None
    lane: str | None = None
    period: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> ReceiptFilters:
        """Read the filters from query parameters; a bad value is ignored and explained, never an error."""
        notes: list[str] = []

        def choice(name: str, allowed: Iterable[str]) -> str | None:
            value = (args.get(name) or "").strip()
            if value and value not in allowed:
                notes.append(f"Ignored {name} “{value[:40]}”: use one of {', '.join(allowed)}.")
                return None
            return value or None

        def day(name: str) -> date | None:
            value = (args.get(name) or "").strip()
            try:
                return date.fromisoformat(value) if value else None
            except ValueError:
                notes.append(f"Ignored {name} “{value[:40]}”: write a date as YYYY-MM-DD.")
                return None

        fallback = choice("fallback", ("yes", "no"))
        date_from, date_to = day("from"), day("to")
        if date_from and date_to and date_from > date_to:
            notes.append("The “from” date was after the “to” date, so the two were swapped.")
            date_from, date_to = date_to, date_from
        return cls(status=choice("status", STATUSES), model=(args.get("model") or "").strip()[:100] or None,
                   fallback=None if fallback is None else fallback == "yes", lane=choice("lane", LANES),
                   period=choice("period", tuple(PERIODS)), date_from=date_from, date_to=date_to,
                   notes=tuple(notes))

    @property
    def active(self) -> bool:
        """Whether any filter narrows the list."""
        return bool(self.query_args())

    def query_args(self) -> dict[str, str]:
        """The filters as query parameters, for links that keep them (pages, polls)."""
        values = {"status": self.status, "model": self.model, "lane": self.lane, "period": self.period,
                  "fallback": None if self.fallback is None else ("yes" if self.fallback else "no"),
                  "from": self.date_from and self.date_from.isoformat(),
                  "to": self.date_to and self.date_to.isoformat()}
        return {name: value for name, value in values.items() if value}

    def conditions(self, now: datetime) -> list:
        """SQL conditions on Receipt for these filters, relative to now."""
        where = []
        if self.status:
            where.append(Receipt.status == self.status)
        if self.model:
            where.append(Receipt.requested_model == self.model)
        if self.fallback is not None:
            where.append(Receipt.fallback_used.is_(self.fallback))
        if self.lane:
            where.append(Receipt.settlement == self.lane)  # the lane that served and was paid
        if self.period:
            where.append(Receipt.created_at >= now - PERIODS[self.period])
        if self.date_from:
            where.append(Receipt.created_at >= datetime.combine(self.date_from, time.min))
        if self.date_to:  # inclusive: up to the end of that UTC day
            where.append(Receipt.created_at < datetime.combine(self.date_to + timedelta(days=1), time.min))
        return where


@dataclass(frozen=True)
class ReceiptListing:
    """One page of a user's receipts, and whether the user has any receipt at all."""

    pagination: Pagination
    has_any: bool


def list_receipts(user_id: int, filters: ReceiptFilters, page: int = 1, per_page: int = PER_PAGE) -> ReceiptListing:
    """A page of the user's receipts matching the filters, newest first; a page past the end shows the last."""
    query = (db.select(Receipt).where(Receipt.user_id == user_id, *filters.conditions(utcnow()))
             .order_by(Receipt.created_at.desc(), Receipt.id.desc()))
    pagination = db.paginate(query, page=max(page, 1), per_page=per_page, error_out=False)
    if pagination.page > pagination.pages > 0:
        pagination = db.paginate(query, page=pagination.pages, per_page=per_page, error_out=False)
    has_any = pagination.total > 0 or db.session.scalar(
        db.select(Receipt.id).where(Receipt.user_id == user_id).limit(1)) is not None
    return ReceiptListing(pagination, has_any)


def receipt_models(user_id: int) -> list[str]:
    """The models this user's receipts name, for the list's model filter."""
    return list(db.session.scalars(
        db.select(Receipt.requested_model).where(Receipt.user_id == user_id, Receipt.requested_model != "")
        .distinct().order_by(Receipt.requested_model)))


@dataclass(frozen=True)
class ErrorWords:
    """How one error class reads: a label for the timeline, and a phrase for a sentence about a channel."""

    label: str
    phrase: str


# Every attempt error class of the contract (upstream failures and planner skips), plus client_error.
ERROR_WORDS = {
    "timeout": ErrorWords("Timed out", "timed out"),
    "connect": ErrorWords("Could not connect", "could not be reached"),
    "upstream_5xx": ErrorWords("Upstream server error", "returned a server error"),
    "rate_limited": ErrorWords("Rate limited by the upstream", "was rate limited"),
    "key_rejected": ErrorWords("The upstream rejected the channel's key", "rejected the channel's key"),
    "model_mismatch": ErrorWords("Model mismatch: the channel does not serve this model",
                                 "does not serve this model"),
    "bad_response": ErrorWords("Unreadable answer from the upstream", "sent an answer Waybill could not read"),
    "cooling_down": ErrorWords("Cooling down after recent failures", "was cooling down"),
    "key_missing": ErrorWords("No key configured for the channel", "has no key configured"),
    "lane_not_allowed": ErrorWords("Lane not allowed by your API key", "is on a lane your API key does not allow"),
    "insufficient_balance": ErrorWords("The lane's wallet could not cover the hold",
                                       "was unaffordable: its wallet could not cover the hold"),
    "disabled": ErrorWords("Channel disabled by an admin", "is disabled"),
    "no_mapping": ErrorWords("No mapping for this model on the channel", "has no mapping for this model"),
    "client_error": ErrorWords("The upstream refused the request itself", "refused the request itself"),
}

FLAG_WORDS = {
    "underpaid": "Underpaid: the charge was capped at what the wallet held, so it is below the usage's price.",
    "review": "Review: the request's worker stopped, so the sweep settled its hold at the reserved amount; "
              "an admin reviews such charges.",
    "model_mismatch": "Model mismatch: the upstream answered with another model than the one mapped; "
                      "a substitute in the catalog is charged at the cheaper of the two prices.",
    "usage_capped": "Usage capped: the upstream reported more completion tokens than max_tokens allows; "
                    "you were billed for at most max_tokens.",
}

OUTCOME_WORDS = {"ok": "served", "error": "failed", "skipped": "skipped"}


def error_label(error_class: str | None) -> str | None:
    """The timeline's words for an error class; an unknown class reads as itself."""
    if error_class is None:
        return None
    words = ERROR_WORDS.get(error_class)
    return words.label if words else error_class.replace("_", " ")


def duration_text(ms: int | None) -> str:
    """A latency in words: "340 ms", "1.2 s", "60 s"."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    return f"{ms / 1000:.1f}".removesuffix(".0") + " s"


_URL = re.compile(r"(?i)\b(?:https?|wss?)://\S+")


def public_text(text: str | None) -> str | None:
    """Upstream text fit for users: addresses are cut, so no channel's base URL shows."""
    return _URL.sub("[address hidden]", text) if text else text


def _what_happened(attempt: Attempt) -> str:
    """One attempt as a phrase after its name: "returned 503", "timed out after 60 s", "was skipped (disabled)"."""
    words = ERROR_WORDS.get(attempt.error_class or "")
    if attempt.outcome == "skipped":
        return f"was skipped ({(words.label if words else attempt.error_class or 'no reason').lower()})"
    if attempt.outcome == "ok":
        return "served"
    if attempt.error_class == "timeout":
        return f"timed out after {duration_text(attempt.latency_ms)}" if attempt.latency_ms else "timed out"
    if attempt.http_status and attempt.error_class in (None, "upstream_5xx", "bad_response"):
        return f"returned {attempt.http_status}"
    phrase = words.phrase if words else f"failed ({attempt.error_class})"
    return f"{phrase} ({attempt.http_status})" if attempt.http_status else phrase


def _who(attempt: Attempt, primary_position: int) -> str:
    return "the primary" if attempt.position == primary_position else f"the backup {attempt.label}"


def _phrases(attempts: list[Attempt], primary: int) -> str:
    return ", ".join(f"{_who(a, primary)} {_what_happened(a)}" for a in attempts)


def failure_story(receipt: Receipt) -> str:
    """What became of the request, in one sentence built from its attempts."""
    attempts = list(receipt.attempts)
    primary = attempts[0].position if attempts else 0
    stage, flags = receipt.failure_stage, receipt.flags or []
    if receipt.status == "succeeded" and attempts:
        served, before = attempts[-1], attempts[:-1]
        if not receipt.fallback_used:
            return f"Served by the primary, {served.label}, on the first try."
        return f"Served by {_who(served, primary)} after {_phrases(before, primary)}."
    if stage == "before_routing":
        return "Rejected before routing: the request was refused before any route was tried, and nothing was charged."
    if "review" in flags:
        return ("Interrupted: the request's worker stopped before it finished, so the sweep settled its hold "
                "at the reserved amount and flagged it for review.")
    if stage in ("mid_stream", "client_disconnected") and attempts:
        streaming, before = attempts[-1], attempts[:-1]
        cut = "the upstream failed" if stage == "mid_stream" else "the client disconnected"
        after = f" (after {_phrases(before, primary)})" if before else ""
        return (f"Interrupted mid-stream: {_who(streaming, primary)}{after} had started answering when {cut}; "
                f"the charge covers what was delivered.")
    if receipt.status == "interrupted" and stage is None:
        return "Still in flight, or its worker stopped: the sweep resolves it after its hold's deadline."
    if not attempts:
        return "No route could be tried: this model has no route configured."
    if stage == "no_route":
        return f"No route could be tried: {_phrases(attempts, primary)}."
    if stage == "after_fallback":
        return f"Failed after fallback: {_phrases(attempts, primary)}."
    return f"Failed at the primary: {attempts[0].label} " + ", then ".join(_what_happened(a) for a in attempts) + "."


@dataclass(frozen=True)
class TimelineStep:
    """One attempt as the receipt page shows it."""

    attempt: Attempt
    role: str
    outcome: str
    error: str | None
    detail: str | None
    latency: str


@dataclass(frozen=True)
class ReceiptDetail:
    """Everything the receipt page shows: the contract's facts, the timeline and the words for them."""

    receipt: Receipt
    facts: dict
    story: str
    timeline: list[TimelineStep]
    flags: list[tuple[str, str]]
    error: str | None
    ledger_entry: LedgerEntry | None


def _own_detail(attempt: Attempt) -> str | None:
    """An attempt's detail when it says more than its error class (a skip's default detail does not)."""
    if attempt.error_class and attempt.detail == attempt.error_class.replace("_", " "):
        return None
    return public_text(attempt.detail)


def receipt_detail(receipt: Receipt) -> ReceiptDetail:
    """The receipt page's facts and words for one receipt."""
    attempts = list(receipt.attempts)
    primary = attempts[0].position if attempts else 0
    timeline = [TimelineStep(a, "Primary" if a.position == primary else f"Backup, position {a.position}",
                             OUTCOME_WORDS.get(a.outcome, a.outcome), error_label(a.error_class),
                             _own_detail(a), duration_text(a.latency_ms)) for a in attempts]
    flags = [(flag, FLAG_WORDS.get(flag, flag)) for flag in receipt.flags or []]
    facts = receipt_json(receipt)  # loads the ledger entry, so the get below reads the session, not the database
    entry = db.session.get(LedgerEntry, receipt.ledger_entry_id) if receipt.ledger_entry_id is not None else None
    return ReceiptDetail(receipt, facts, failure_story(receipt), timeline, flags, public_text(receipt.error_message),
                         entry)
