"""Reading receipts back: the JSON of the contract, and the owner-only lookup."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from app.billing.models import LedgerEntry, Wallet
from app.billing.pricing import MICROS_PER_USD, format_usd
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
