"""A user's recent requests at a glance: fallback counts, the latest receipts, the receipts behind ledger entries."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func

from app.extensions import db
from app.gateway.models import Receipt

# The periods of the receipts page's `period` filter, so each count links to exactly the receipts it counts.
PERIODS = {"24h": timedelta(hours=24), "30d": timedelta(days=30)}


@dataclass(frozen=True)
class Glance:
    """In one period: requests that fell back, settled on the routed lane, and failed."""

    period: str
    fallback: int
    routed: int
    failed: int


def fallback_glance(user_id: int, now: datetime) -> list[Glance]:
    """The fallback, routed and failed counts of the user's receipts for each period, in one query."""
    facts = {"fallback": Receipt.fallback_used.is_(True), "routed": Receipt.settlement == "routed",
             "failed": Receipt.status == "failed"}
    sums = [func.coalesce(func.sum(case((fact & (Receipt.created_at >= now - span), 1), else_=0)), 0)
            for span in PERIODS.values() for fact in facts.values()]
    counts = db.session.execute(db.select(*sums).where(
        Receipt.user_id == user_id, Receipt.created_at >= now - max(PERIODS.values()))).one()
    per_period = [counts[n:n + len(facts)] for n in range(0, len(counts), len(facts))]
    return [Glance(period, *map(int, values)) for period, values in zip(PERIODS, per_period)]


def latest_receipts(user_id: int, limit: int = 5) -> list[Receipt]:
    """The user's newest receipts, newest first."""
    return list(db.session.scalars(db.select(Receipt).where(Receipt.user_id == user_id)
                                   .order_by(Receipt.created_at.desc(), Receipt.id.desc()).limit(limit)))


def receipts_of_entries(entries: Iterable) -> dict[int, str]:
    """Receipt ids by ledger entry id for entries (with `id` and `hold_id`), in one query for all of them."""
    # Charges and refunds carry their request's hold, and a receipt names its hold: the hold index finds them.
    entries = list(entries)
    holds = {entry.hold_id for entry in entries if entry.hold_id is not None}
    if not holds:
        return {}
    receipt_of_hold = dict(db.session.execute(
        db.select(Receipt.hold_id, Receipt.id).where(Receipt.hold_id.in_(holds))).all())
    return {entry.id: receipt_of_hold[entry.hold_id] for entry in entries if entry.hold_id in receipt_of_hold}


def charged_by_key(user_id: int) -> dict[int, int]:
    """What each of a user's keys has been charged in all, in micro-USD, from its receipts."""
    rows = db.session.execute(db.select(Receipt.api_key_id, func.sum(Receipt.charge))
                              .where(Receipt.user_id == user_id, Receipt.api_key_id.is_not(None))
                              .group_by(Receipt.api_key_id))
    return {key_id: int(total or 0) for key_id, total in rows}
