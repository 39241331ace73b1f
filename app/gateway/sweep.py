"""Resolving holds of requests that died, and flagging their receipts for review."""
from __future__ import annotations

from sqlalchemy import update

from app.billing import holds
from app.extensions import db
from app.gateway.models import Receipt


def _flag_receipt(settlement: holds.Settlement) -> None:
    receipt = db.session.scalar(db.select(Receipt).where(Receipt.hold_id == settlement.hold_id))
    if receipt is None:
        return
    db.session.execute(
        update(Receipt).where(Receipt.id == receipt.id)
        .values(charge=settlement.charged, flags=sorted({*(receipt.flags or []), "review"}),
                ledger_entry_id=settlement.entry.id if settlement.entry else None,
                status="interrupted", failure_stage=receipt.failure_stage or "mid_stream")
        .execution_options(synchronize_session=False))


def sweep_stale_holds(older_than_s: int | None = None) -> holds.SweepResult:
    """Run the billing sweep; every hold it charges marks its receipt `review`."""
    return holds.sweep(older_than_s, on_settled=_flag_receipt)
