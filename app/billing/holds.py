"""Holds: reserve before the upstream call, then settle or void exactly once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import update

from app.billing.models import EntryKind, Hold, HoldStatus, LedgerEntry, Wallet
from app.billing.wallets import post_entry
from app.database import utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db


class InsufficientBalance(ServiceError):
    """The wallet's available balance cannot cover the hold."""


class HoldClosed(ServiceError):
    """The hold was already settled or voided; a hold ends once."""


@dataclass(frozen=True)
class Settlement:
    """What settling a hold charged, and the ledger entry that records it."""

    hold_id: int
    charged: int
    underpaid: bool
    entry: LedgerEntry | None


def reserve(wallet_id: int, amount: int, memo: str = "", ttl_s: int | None = None,
            upstream_started: bool = False) -> Hold:
    """Reserve amount on a wallet with one guarded statement, or raise InsufficientBalance.

    A caller that sends upstream right after reserving passes upstream_started=True, saving a
    write per request; should it die in between, sweep charges the hold flagged for review.
    """
    if amount < 0:
        raise ValueError("a hold cannot be negative")
    ttl = ttl_s if ttl_s is not None else current_app.config["WAYBILL_HOLD_TTL_S"]
    with write_transaction():
        taken = db.session.execute(
            update(Wallet)
            .where(Wallet.id == wallet_id, Wallet.balance - Wallet.reserved >= amount)
            .values(reserved=Wallet.reserved + amount)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            raise InsufficientBalance(f"wallet {wallet_id} cannot cover a hold of {amount} µ$")
        now = utcnow()
        hold = Hold(wallet_id=wallet_id, amount=amount, memo=memo[:200], created_at=now,
                    deadline=now + timedelta(seconds=ttl), status=HoldStatus.OPEN.value,
                    upstream_started=upstream_started)
        db.session.add(hold)
        db.session.flush()
    return hold


def mark_upstream_started(hold_id: int) -> None:
    """Record that the upstream call began, so a dead request is charged, never voided."""
    with write_transaction():
        db.session.execute(
            update(Hold).where(Hold.id == hold_id).values(upstream_started=True)
            .execution_options(synchronize_session=False)
        )


def _close(hold_id: int, status: HoldStatus, **values) -> Hold:
    """Move an open hold to its final status in one statement; raise HoldClosed if it had ended."""
    closed = db.session.execute(
        update(Hold)
        .where(Hold.id == hold_id, Hold.status == HoldStatus.OPEN.value)
        .values(status=status.value, closed_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if closed != 1:
        raise HoldClosed(f"hold {hold_id} has already ended")
    return db.session.get(Hold, hold_id, populate_existing=True)


def void(hold_id: int) -> None:
    """Release a hold without charging anything."""
    with write_transaction():
        _void_locked(hold_id)


def _void_locked(hold_id: int) -> None:
    hold = _close(hold_id, HoldStatus.VOIDED, charged=0)
    db.session.execute(
        update(Wallet).where(Wallet.id == hold.wallet_id)
        .values(reserved=Wallet.reserved - hold.amount)
        .execution_options(synchronize_session=False)
    )


def settle(hold_id: int, charge: int, memo: str = "", review: bool = False) -> Settlement:
    """Charge a hold once and release the rest; take any excess from the available balance.

    When the wallet cannot pay the excess, the charge is capped at what it holds and flagged
    underpaid, so a balance never goes below zero.
    """
    if charge < 0:
        raise ValueError("a charge cannot be negative")
    with write_transaction():
        return _settle_locked(hold_id, charge, memo, review)


def _settle_locked(hold_id: int, charge: int, memo: str, review: bool) -> Settlement:
    hold = db.session.get(Hold, hold_id, populate_existing=True)
    if hold is None:
        raise HoldClosed(f"hold {hold_id} does not exist")
    # Lock the wallet row (PostgreSQL; SQLite already holds the write lock) so the cap below
    # is computed from the balance the guarded update will see.
    wallet = db.session.scalar(
        db.select(Wallet).where(Wallet.id == hold.wallet_id)
        .with_for_update().execution_options(populate_existing=True)
    )
    payable = min(charge, hold.amount + wallet.available)
    _close(hold_id, HoldStatus.SETTLED, charged=payable, underpaid=payable < charge,
           needs_review=review)
    balance_after = db.session.execute(
        update(Wallet)
        .where(Wallet.id == wallet.id, Wallet.balance - Wallet.reserved >= payable - hold.amount)
        .values(balance=Wallet.balance - payable, reserved=Wallet.reserved - hold.amount)
        .returning(Wallet.balance)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    entry = None
    if payable > 0:
        entry = post_entry(wallet.id, EntryKind.CHARGE, -payable, balance_after,
                           memo or hold.memo, hold_id=hold.id)
    return Settlement(hold_id=hold.id, charged=payable, underpaid=payable < charge, entry=entry)


@dataclass(frozen=True)
class SweepResult:
    """How many stale holds a sweep voided and how many it charged for review."""

    voided: int
    charged: int


def sweep(older_than_s: int | None = None, now: datetime | None = None,
          on_settled: Callable[[Settlement], None] | None = None) -> SweepResult:
    """Resolve stale open holds: void if the upstream never started, else charge for review.

    on_settled runs inside the same transaction as each charge, so whoever owns the request
    (the gateway's receipt) records it atomically.
    """
    now = now or utcnow()
    stale = db.select(Hold.id, Hold.upstream_started, Hold.amount).where(
        Hold.status == HoldStatus.OPEN.value
    )
    if older_than_s is None:
        stale = stale.where(Hold.deadline <= now)
    else:
        stale = stale.where(Hold.created_at <= now - timedelta(seconds=older_than_s))
    voided = charged = 0
    for hold_id, started, amount in db.session.execute(stale.order_by(Hold.id)).all():
        try:
            with write_transaction():
                if started:
                    settlement = _settle_locked(hold_id, amount, "settled by sweep at the reserved amount", True)
                    if on_settled:
                        on_settled(settlement)
                else:
                    _void_locked(hold_id)
        except HoldClosed:
            continue  # the request finished while we swept; it already ended the hold
        if started:
            charged += 1
        else:
            voided += 1
    return SweepResult(voided=voided, charged=charged)
