"""Resolving holds of requests that died, and flagging their receipts for review."""
from __future__ import annotations

from typing import Callable

from sqlalchemy import update

from app.accounts import limits
from app.accounts.models import ApiKey
from app.billing import holds
from app.extensions import db
from app.gateway.flight import FailureStage, ReceiptStatus
from app.gateway.models import Receipt


def _capped_key_of(hold_id: int) -> int | None:
    """The key with a spend cap that a hold's request used, if any."""
    return db.session.scalar(db.select(ApiKey.id).join(Receipt, Receipt.api_key_id == ApiKey.id)
                             .where(Receipt.hold_id == hold_id, ApiKey.spend_cap.is_not(None)))


def _lock_key(hold_id: int) -> None:
    """Lock the request's key before its wallet: the lock order of every money write."""
    key_id = _capped_key_of(hold_id)
    if key_id is not None:
        limits.lock_key(key_id)


def _flag_receipt(settlement: holds.Settlement) -> None:
    """Record a swept charge on its receipt, and on its key's spend count, in the sweep's transaction."""
    receipt = db.session.scalar(db.select(Receipt).where(Receipt.hold_id == settlement.hold_id))
    if receipt is None:
        return
    db.session.execute(
        update(Receipt).where(Receipt.id == receipt.id)
        .values(charge=settlement.charged, flags=sorted({*(receipt.flags or []), "review"}),
                ledger_entry_id=settlement.entry.id if settlement.entry else None,
                status=str(ReceiptStatus.INTERRUPTED),
                failure_stage=receipt.failure_stage or str(FailureStage.MID_STREAM))
        .execution_options(synchronize_session=False))
    key_id = _capped_key_of(settlement.hold_id)
    if key_id is not None:
        limits.settle_spend(key_id, settlement.held, settlement.charged)


def sweep_stale_holds(older_than_s: int | None = None,
                      and_then: Callable[[holds.Settlement], None] | None = None) -> int:
    """Run the billing sweep; every hold it charges marks its receipt `review`, then goes to and_then in the
    same transaction (the admin console audits each one). Returns how many."""
    def on_settled(settlement: holds.Settlement) -> None:
        _flag_receipt(settlement)
        if and_then is not None:
            and_then(settlement)
    return holds.sweep(older_than_s, before_settling=_lock_key, on_settled=on_settled)
