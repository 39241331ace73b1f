"""A key's own limits, counted in the database so every worker and node sees one count.

Each decision is one guarded UPDATE, like a wallet debit: the row lock (PostgreSQL) or the
write lock (SQLite's BEGIN IMMEDIATE) makes check-and-count atomic.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, case, update

from app.accounts.models import ApiKey
from app.database import execute, utcnow, write_transaction
from app.errors import ServiceError

KEY = ApiKey.__table__
WINDOW_S = 60

TAKE_SLOT = (update(KEY)
             .where(KEY.c.id == bindparam("key"),
                    (KEY.c.rpm_window.is_(None)) | (KEY.c.rpm_window != bindparam("window"))
                    | (KEY.c.rpm_count < KEY.c.rpm_limit))
             .values(rpm_count=case((KEY.c.rpm_window == bindparam("window"), KEY.c.rpm_count + 1), else_=1),
                     rpm_window=bindparam("window")))
RESERVE_SPEND = (update(KEY)
                 .where(KEY.c.id == bindparam("key"),
                        KEY.c.spent + KEY.c.reserved + bindparam("amount") <= KEY.c.spend_cap)
                 .values(reserved=KEY.c.reserved + bindparam("amount")))
SETTLE_SPEND = (update(KEY)
                .where(KEY.c.id == bindparam("key"))
                .values(reserved=KEY.c.reserved - bindparam("held"),
                        spent=KEY.c.spent + bindparam("charge")))
RELEASE_SPEND = (update(KEY).where(KEY.c.id == bindparam("key"))
                 .values(reserved=KEY.c.reserved - bindparam("held")))


class SpendCapReached(ServiceError):
    """The key's spend cap cannot cover this request's hold."""


def take_request_slot(key_id: int, now: datetime | None = None) -> int | None:
    """Count one request in the key's current minute; return None if let in, else seconds to wait.

    A refused request is not counted, so a client that keeps retrying is let in next minute.
    """
    seconds = int(((now or utcnow()) - datetime(1970, 1, 1)).total_seconds())
    window = seconds // WINDOW_S
    with write_transaction():
        taken = execute(TAKE_SLOT, {"key": key_id, "window": window}).rowcount
    return None if taken == 1 else WINDOW_S - seconds % WINDOW_S


def reserve_spend(key_id: int, amount: int) -> None:
    """Hold amount against the key's cap in the caller's transaction, or raise SpendCapReached."""
    if amount > 0 and execute(RESERVE_SPEND, {"key": key_id, "amount": amount}).rowcount != 1:
        raise SpendCapReached("this key has reached its spend cap")
    if amount < 0:
        release_spend(key_id, -amount)


def release_spend(key_id: int, held: int) -> None:
    """Give back a hold against the key's cap, in the caller's transaction."""
    execute(RELEASE_SPEND, {"key": key_id, "held": held})


def lock_key(key_id: int) -> None:
    """Lock the key's row for the caller's transaction (SQLite's write lock already covers it)."""
    execute(KEY.select().with_only_columns(KEY.c.id).where(KEY.c.id == key_id).with_for_update())


def allowed_charge(key_id: int, held: int, charge: int) -> int:
    """The part of a charge the key's cap allows, given what this request held (caller's transaction)."""
    spent, reserved, cap = execute(
        KEY.select().with_only_columns(KEY.c.spent, KEY.c.reserved, KEY.c.spend_cap)
        .where(KEY.c.id == key_id).with_for_update()).one()
    return max(0, min(charge, cap - spent - (reserved - held)))


def settle_spend(key_id: int, held: int, charged: int) -> None:
    """Book what a request charged and release its hold, in the caller's transaction."""
    execute(SETTLE_SPEND, {"key": key_id, "held": held, "charge": charged})
