"""Receipt invariants, checked with the ledger's by `waybill ledger check`."""
from __future__ import annotations

from app.billing.models import EntryKind, LedgerEntry
from app.extensions import db
from app.gateway.models import Receipt


def receipt_violations() -> list[str]:
    """Every charged receipt has exactly one charge entry equal to its charge; no charge without one."""
    problems = []
    rows = db.session.execute(
        db.select(Receipt.id, Receipt.charge, Receipt.hold_id, LedgerEntry.kind, LedgerEntry.amount,
                  LedgerEntry.hold_id)
        .outerjoin(LedgerEntry, LedgerEntry.id == Receipt.ledger_entry_id)
        .where((Receipt.charge != 0) | Receipt.ledger_entry_id.is_not(None)))
    for receipt_id, charge, hold_id, kind, amount, entry_hold in rows:
        if kind != EntryKind.CHARGE.value or amount != -charge or entry_hold != hold_id:
            problems.append(f"receipt {receipt_id}: charge {charge} but its ledger entry is "
                            f"{kind or 'missing'} {amount} (hold {entry_hold})")
    return problems
