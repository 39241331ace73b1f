"""Read-only views of the ledger for pages and exports: filtered pages, streamed rows, spend per day."""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, func

from app.billing.models import EntryKind, LedgerEntry
from app.extensions import db

LEDGER_PAGE_SIZE = 50
EXPORT_BATCH = 1000  # rows per query while streaming an export: bounded memory for any ledger
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ENTRY_KINDS = tuple(kind.value for kind in EntryKind)


def parse_date(text: str | None) -> date | None:
    """A YYYY-MM-DD date, or None for anything else (an empty or malformed filter means no filter)."""
    if not text or not ISO_DATE.fullmatch(text.strip()):
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class LedgerFilter:
    """Which entries of a wallet to list: one kind, and UTC dates from and to, both inclusive."""

    kind: str | None = None
    start: date | None = None
    end: date | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> LedgerFilter:
        """Read `type`, `from` and `to` from query arguments, dropping values that are not valid."""
        kind = args.get("type") or None
        return cls(kind=kind if kind in ENTRY_KINDS else None, start=parse_date(args.get("from")),
                   end=parse_date(args.get("to")))

    def as_args(self) -> dict[str, str]:
        """The query arguments that give this filter back, for links that keep it."""
        args = {"type": self.kind, "from": self.start and self.start.isoformat(),
                "to": self.end and self.end.isoformat()}
        return {name: value for name, value in args.items() if value}

    def apply(self, query: Select) -> Select:
        """The query narrowed to the entries this filter keeps."""
        if self.kind:
            query = query.where(LedgerEntry.kind == self.kind)
        if self.start:
            query = query.where(LedgerEntry.created_at >= datetime.combine(self.start, datetime.min.time()))
        if self.end:
            query = query.where(LedgerEntry.created_at < datetime.combine(self.end + timedelta(days=1),
                                                                          datetime.min.time()))
        return query


def ledger_page(wallet_id: int, where: LedgerFilter, page: int = 1, per_page: int = LEDGER_PAGE_SIZE):
    """One page of a wallet's entries, newest first, as a Flask-SQLAlchemy Pagination."""
    query = where.apply(db.select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_id))
    return db.paginate(query.order_by(LedgerEntry.id.desc()), page=page, per_page=per_page, error_out=False)


def page_of_entry(wallet_id: int, where: LedgerFilter, entry_id: int,
                  per_page: int = LEDGER_PAGE_SIZE) -> int | None:
    """The page of the filtered ledger that holds this entry, or None when the wallet's list has no such entry."""
    listed = where.apply(db.select(LedgerEntry.id).where(LedgerEntry.wallet_id == wallet_id))
    if db.session.scalar(listed.where(LedgerEntry.id == entry_id)) is None:
        return None
    newer = db.session.scalar(db.select(func.count()).select_from(
        listed.where(LedgerEntry.id > entry_id).subquery()))
    return newer // per_page + 1


def iter_entries(wallet_id: int, where: LedgerFilter, batch: int = EXPORT_BATCH) -> Iterator[list]:
    """Every entry the filter keeps, newest first, in batches of rows read one query at a time."""
    columns = (LedgerEntry.id, LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.amount,
               LedgerEntry.balance_after, LedgerEntry.memo, LedgerEntry.hold_id)
    query = where.apply(db.select(*columns).where(LedgerEntry.wallet_id == wallet_id))
    below = None
    while True:
        # Keyset pages: each query starts below the last id seen, so a deep page costs what the first does.
        rows = db.session.execute((query if below is None else query.where(LedgerEntry.id < below))
                                  .order_by(LedgerEntry.id.desc()).limit(batch)).all()
        if not rows:
            return
        yield rows
        below = rows[-1].id


@dataclass(frozen=True)
class DailySpend:
    """What one wallet spent on each UTC day of a period, oldest day first; days without spend are zero."""

    days: list[tuple[date, int]]

    @property
    def total(self) -> int:
        return sum(amount for _, amount in self.days)

    @property
    def peak(self) -> int:
        return max((amount for _, amount in self.days), default=0)


def daily_spend(wallet_ids: Mapping[str, int], today: date, days: int = 30) -> dict[str, DailySpend]:
    """Charges per UTC day of the last `days` days (today included) for each wallet, keyed as given."""
    first = today - timedelta(days=days - 1)
    day = func.date(LedgerEntry.created_at)  # SQLite gives 'YYYY-MM-DD' text, PostgreSQL a date
    rows = db.session.execute(
        db.select(LedgerEntry.wallet_id, day, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.wallet_id.in_(list(wallet_ids.values())), LedgerEntry.kind == EntryKind.CHARGE.value,
               LedgerEntry.created_at >= datetime.combine(first, datetime.min.time()))
        .group_by(LedgerEntry.wallet_id, day)).all()
    spent = {(wallet_id, date.fromisoformat(str(on)[:10])): -int(total) for wallet_id, on, total in rows}
    calendar = [first + timedelta(days=n) for n in range(days)]
    return {name: DailySpend([(on, spent.get((wallet_id, on), 0)) for on in calendar])
            for name, wallet_id in wallet_ids.items()}
