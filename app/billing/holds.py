"""Holds: reserve before the upstream call, then settle or void exactly once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, insert, update

from app.billing.models import EntryKind, Hold, HoldStatus, Wallet
from app.billing.wallets import PostedEntry, post_entry
from app.database import execute, utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db


# Statements built once with bound parameters: the hot path skips the ORM layer and the cost
# of compiling and cache-keying a fresh statement per request, which is larger than the SQL's.
WALLET, HOLD = Wallet.__table__, Hold.__table__
TAKE_HOLD = (update(WALLET)
             .where(WALLET.c.id == bindparam("wallet"), WALLET.c.balance - WALLET.c.reserved >= bindparam("amount"))
             .values(reserved=WALLET.c.reserved + bindparam("amount")))
INSERT_HOLD = insert(HOLD).returning(HOLD.c.id)
CLOSE_HOLD = (update(HOLD)
              .where(HOLD.c.id == bindparam("hold"), HOLD.c.status == HoldStatus.OPEN.value)
              .values(status=bindparam("new_status"), closed_at=bindparam("at"), charged=bindparam("charge"),
                      needs_review=bindparam("review"))
              .returning(HOLD.c.wallet_id, HOLD.c.amount, HOLD.c.memo))
EXTEND_HOLD = (update(HOLD).where(HOLD.c.id == bindparam("hold"), HOLD.c.status == HoldStatus.OPEN.value)
               .values(deadline=bindparam("deadline"), delivered=bindparam("delivered")))
RELEASE_HOLD = update(WALLET).where(WALLET.c.id == bindparam("wallet")).values(
    reserved=WALLET.c.reserved - bindparam("held"))
CHARGE_WALLET = (update(WALLET)
                 .where(WALLET.c.id == bindparam("wallet"),
                        WALLET.c.balance - WALLET.c.reserved >= bindparam("charge") - bindparam("held"))
                 .values(balance=WALLET.c.balance - bindparam("charge"), reserved=WALLET.c.reserved - bindparam("held"))
                 .returning(WALLET.c.balance))


class InsufficientBalance(ServiceError):
    """The wallet's available balance cannot cover the hold."""


class HoldClosed(ServiceError):
    """The hold was already settled or voided; a hold ends once."""


@dataclass(frozen=True)
class Settlement:
    """What settling a hold charged, and the ledger entry that records it."""

    hold_id: int
    held: int
    charged: int
    underpaid: bool
    entry: PostedEntry | None


@dataclass(frozen=True)
class ReservedHold:
    """A hold just placed."""

    id: int
    wallet_id: int
    amount: int


def reserve(wallet_id: int, amount: int, memo: str = "", ttl_s: int | None = None,
            streaming: bool = False) -> ReservedHold:
    """Reserve amount on a wallet with one guarded statement, or raise InsufficientBalance.

    A streaming hold starts with nothing delivered; its heartbeat records what it delivers.
    """
    if amount < 0:
        raise ValueError("a hold cannot be negative")
    ttl = ttl_s if ttl_s is not None else current_app.config["WAYBILL_HOLD_TTL_S"]
    with write_transaction():
        taken = execute(TAKE_HOLD, {"wallet": wallet_id, "amount": amount}).rowcount
        if taken != 1:
            raise InsufficientBalance(f"wallet {wallet_id} cannot cover a hold of {amount} µ$")
        now = utcnow()
        hold_id = execute(
            INSERT_HOLD,
            {"wallet_id": wallet_id, "amount": amount, "memo": memo[:200], "created_at": now,
             "deadline": now + timedelta(seconds=ttl), "status": HoldStatus.OPEN.value,
             "underpaid": False, "needs_review": False, "delivered": 0 if streaming else None}).scalar_one()
    return ReservedHold(hold_id, wallet_id, amount)


def keep_alive(hold_id: int, delivered: int, ttl_s: int | None = None) -> None:
    """Push a live stream's hold deadline out again and record what it has delivered so far (µ$)."""
    ttl = ttl_s if ttl_s is not None else current_app.config["WAYBILL_HOLD_TTL_S"]
    with write_transaction():
        execute(EXTEND_HOLD, {"hold": hold_id, "deadline": utcnow() + timedelta(seconds=ttl), "delivered": delivered})


def _close(hold_id: int, status: HoldStatus, charge: int, review: bool = False) -> tuple[int, int, str]:
    """End an open hold in one statement; return its wallet, amount and memo, or raise HoldClosed."""
    row = execute(CLOSE_HOLD, {"hold": hold_id, "new_status": status.value, "at": utcnow(), "charge": charge,
                               "review": review}).first()
    if row is None:
        raise HoldClosed(f"hold {hold_id} has already ended")
    return row[0], row[1], row[2]


def void(hold_id: int) -> None:
    """Release a hold without charging anything."""
    with write_transaction():
        _void_locked(hold_id)


def _void_locked(hold_id: int) -> None:
    wallet_id, amount, _memo = _close(hold_id, HoldStatus.VOIDED, charge=0)
    execute(RELEASE_HOLD, {"wallet": wallet_id, "held": amount})


def settle(hold_id: int, charge: int, memo: str = "", review: bool = False) -> Settlement:
    """Charge a hold once and release the rest; take any excess from the available balance.

    When the wallet cannot pay the excess, the charge is capped at what it holds and flagged
    underpaid, so a balance never goes below zero.
    """
    if charge < 0:
        raise ValueError("a charge cannot be negative")
    with write_transaction():
        return _settle_locked(hold_id, charge, memo, review)


def _charge_wallet(wallet_id: int, charge: int, held: int) -> int | None:
    """Take charge and release held in one guarded statement; None if the excess is not there."""
    return execute(CHARGE_WALLET, {"wallet": wallet_id, "charge": charge, "held": held}).scalar()


def _settle_locked(hold_id: int, charge: int, memo: str, review: bool) -> Settlement:
    wallet_id, held, hold_memo = _close(hold_id, HoldStatus.SETTLED, charge=charge, review=review)
    payable = charge
    balance_after = _charge_wallet(wallet_id, charge, held)
    if balance_after is None:
        # The wallet cannot pay the excess over the hold: lock it (PostgreSQL; SQLite already
        # holds the write lock), cap the charge at what it holds, and flag the hold underpaid.
        balance, reserved = db.session.execute(
            db.select(Wallet.balance, Wallet.reserved).where(Wallet.id == wallet_id).with_for_update()).one()
        payable = held + (balance - reserved)
        db.session.execute(update(Hold).where(Hold.id == hold_id).values(charged=payable, underpaid=True)
                           .execution_options(synchronize_session=False))
        balance_after = _charge_wallet(wallet_id, payable, held)
    entry = None
    if payable > 0:
        entry = post_entry(wallet_id, EntryKind.CHARGE, -payable, balance_after, memo or hold_memo, hold_id=hold_id)
    return Settlement(hold_id=hold_id, held=held, charged=payable, underpaid=payable < charge, entry=entry)


SWEEP_BATCH = 1000  # holds resolved per sweep run; run it again for more


def sweep(older_than_s: int | None = None, before_settling: Callable[[int], None] | None = None,
          on_settled: Callable[[Settlement], None] | None = None) -> int:
    """Charge stale open holds, flagged for review; return how many.

    A stale hold's request died with its worker. A stream is charged what it had delivered at its
    last heartbeat; a whole answer, of which nothing records whether the upstream produced it, is
    charged the reserved amount. Never silently voided: a person reviews each one.
    before_settling(hold_id) and on_settled run inside the same transaction as each charge, so
    whoever owns the request (the gateway) can lock its rows first and record the charge atomically.
    """
    now = utcnow()
    stale = db.select(Hold.id, Hold.amount, Hold.delivered).where(Hold.status == HoldStatus.OPEN.value)
    if older_than_s is None:
        stale = stale.where(Hold.deadline <= now)
    else:
        stale = stale.where(Hold.created_at <= now - timedelta(seconds=older_than_s))
    charged = 0
    for hold_id, amount, delivered in db.session.execute(stale.order_by(Hold.id).limit(SWEEP_BATCH)).all():
        charge, memo = ((amount, "settled by sweep at the reserved amount") if delivered is None
                        else (min(delivered, amount), "settled by sweep at what the stream had delivered"))
        try:
            with write_transaction():
                if before_settling:
                    before_settling(hold_id)
                settlement = _settle_locked(hold_id, charge, memo, True)
                if on_settled:
                    on_settled(settlement)
        except HoldClosed:
            continue  # the request finished while we swept; it already ended the hold
        charged += 1
    return charged
