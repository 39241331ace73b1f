"""Read-only views of the ledger for pages and reports."""
from __future__ import annotations

from app.billing.models import LedgerEntry
from app.extensions import db


def recent_entries(wallet_ids: list[int], limit: int) -> list[LedgerEntry]:
    """The newest ledger entries of some wallets, newest first."""
    return list(db.session.scalars(
        db.select(LedgerEntry).where(LedgerEntry.wallet_id.in_(wallet_ids))
        .order_by(LedgerEntry.id.desc()).limit(limit)
    ))
