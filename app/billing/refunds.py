"""Refunds: money given back against a settled hold's charge, as `refund` ledger entries, never by editing a row."""
from __future__ import annotations

from sqlalchemy import func, update

from app.billing.models import EntryKind, Hold, HoldStatus, LedgerEntry, Wallet
from app.billing.pricing import format_usd
from app.billing.wallets import MAX_BALANCE_MICROS, InvalidAmount, PostedEntry, post_entry
from app.database import write_transaction
from app.errors import ServiceError
from app.extensions import db


class RefundRefused(ServiceError):
    """A refund that would give back more than was charged, or refunds a hold that charged nothing."""


def refunded_amount(hold_id: int) -> int:
    """What refund entries have given back against a hold's charge so far."""
    return int(db.session.scalar(db.select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.hold_id == hold_id, LedgerEntry.kind == EntryKind.REFUND.value)))


def refund_entries(hold_id: int) -> list[LedgerEntry]:
    """The refund entries of a hold, oldest first."""
    return list(db.session.scalars(db.select(LedgerEntry).where(
        LedgerEntry.hold_id == hold_id, LedgerEntry.kind == EntryKind.REFUND.value).order_by(LedgerEntry.id)))


def refund(hold_id: int, amount: int, memo: str = "") -> PostedEntry:
    """Give back part or all of a settled hold's charge: never more than it charged less earlier refunds."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidAmount("the refund must be greater than zero")
    with write_transaction():
        # Lock the hold: refunds of one charge queue here (SQLite's BEGIN IMMEDIATE already serializes
        # them), so each one's sum below sees every refund committed before it.
        hold = db.session.execute(
            db.select(Hold.wallet_id, Hold.charged)
            .where(Hold.id == hold_id, Hold.status == HoldStatus.SETTLED.value).with_for_update()).first()
        if hold is None or not hold.charged:
            raise RefundRefused("nothing was charged, so there is nothing to refund")
        refundable = hold.charged - refunded_amount(hold_id)
        if amount > refundable:
            raise RefundRefused(f"at most ${format_usd(refundable)} of this charge is left to refund"
                                if refundable else "this charge has already been refunded in full")
        balance_after = db.session.execute(
            update(Wallet).where(Wallet.id == hold.wallet_id, Wallet.balance + amount <= MAX_BALANCE_MICROS)
            .values(balance=Wallet.balance + amount).returning(Wallet.balance)
            .execution_options(synchronize_session=False)).scalar()
        if balance_after is None:
            raise InvalidAmount(f"a wallet holds at most ${MAX_BALANCE_MICROS // 1_000_000:,}")
        return post_entry(hold.wallet_id, EntryKind.REFUND, amount, balance_after, memo, hold_id=hold_id)
