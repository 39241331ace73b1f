"""The ledger invariants that `waybill ledger check` and every concurrency test assert."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func

from app.billing.models import EntryKind, Hold, HoldStatus, LedgerEntry, Wallet
from app.extensions import db

# The micro-USD columns; SQLite's column types are advisory, so any of them could end up holding a REAL.
MONEY_COLUMNS = {Wallet: (Wallet.balance, Wallet.reserved), LedgerEntry: (LedgerEntry.amount, LedgerEntry.balance_after),
                 Hold: (Hold.amount, Hold.charged)}


def ledger_violations() -> list[str]:
    """Return one line per violated invariant, naming the wallet or hold; empty when all hold."""
    problems = _money_type_violations()
    open_holds = dict(
        db.session.execute(
            db.select(Hold.wallet_id, func.sum(Hold.amount))
            .where(Hold.status == HoldStatus.OPEN.value).group_by(Hold.wallet_id)
        ).all()
    )
    entries_by_wallet: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for entry_id, wallet_id, amount, balance_after in db.session.execute(
        db.select(LedgerEntry.id, LedgerEntry.wallet_id, LedgerEntry.amount, LedgerEntry.balance_after)
        .order_by(LedgerEntry.id)
    ):
        entries_by_wallet[wallet_id].append((entry_id, amount, balance_after))

    for wallet in db.session.scalars(db.select(Wallet).order_by(Wallet.id)):
        name = f"wallet {wallet.id} (user {wallet.user_id}, {wallet.kind})"
        running = 0
        for entry_id, amount, balance_after in entries_by_wallet.get(wallet.id, []):
            running += amount
            if balance_after != running:
                problems.append(f"{name}: entry {entry_id} balance_after {balance_after} != running sum {running}")
                break
        total = sum(amount for _, amount, _ in entries_by_wallet.get(wallet.id, []))
        if wallet.balance != total:
            problems.append(f"{name}: balance {wallet.balance} != sum of ledger entries {total}")
        if wallet.balance < 0:
            problems.append(f"{name}: balance {wallet.balance} is negative")
        if wallet.reserved < 0:
            problems.append(f"{name}: reserved {wallet.reserved} is negative")
        held = int(open_holds.get(wallet.id) or 0)
        if wallet.reserved != held:
            problems.append(f"{name}: reserved {wallet.reserved} != open holds {held}")

    problems.extend(_charge_entry_violations())
    problems.extend(_refund_entry_violations())
    return problems


def _money_type_violations() -> list[str]:
    """On SQLite, money that is not stored as an integer: what an int64 overflow turns into a REAL."""
    # A PostgreSQL BIGINT column cannot hold anything else, so only SQLite needs looking at.
    if db.session.get_bind().dialect.name != "sqlite":
        return []
    problems = []
    for owner, columns in MONEY_COLUMNS.items():
        for column in columns:
            stored = func.typeof(column)
            rows = db.session.execute(db.select(owner.id, column, stored)
                                      .where(stored.not_in(("integer", "null"))).order_by(owner.id))
            problems.extend(f"{owner.__tablename__.replace('_', ' ')} {row_id}: {column.key} {value!r} "
                            f"is stored as {type_name}, not integer" for row_id, value, type_name in rows)
    return problems


def _charge_entry_violations() -> list[str]:
    """Every charged hold has exactly one charge entry equal to its charge, and no other has one."""
    problems = []
    charges: dict[int, list[int]] = defaultdict(list)
    for hold_id, amount in db.session.execute(
        db.select(LedgerEntry.hold_id, LedgerEntry.amount)
        .where(LedgerEntry.kind == EntryKind.CHARGE.value)
    ):
        charges[hold_id].append(amount)
    for hold in db.session.scalars(db.select(Hold).where(Hold.status == HoldStatus.SETTLED.value)):
        found = charges.pop(hold.id, [])
        expected = [-hold.charged] if hold.charged else []
        if found != expected:
            problems.append(f"hold {hold.id} (wallet {hold.wallet_id}): charged {hold.charged} "
                            f"but charge entries are {found}")
    for hold_id, amounts in charges.items():
        problems.append(f"charge entries {amounts} belong to hold {hold_id}, which is not settled")
    return problems


def _refund_entry_violations() -> list[str]:
    """Refunds are positive, belong to a settled hold on the same wallet, and never exceed what it charged."""
    problems = []
    refunds = db.session.execute(
        db.select(LedgerEntry.hold_id, LedgerEntry.wallet_id, func.count(), func.sum(LedgerEntry.amount),
                  func.min(LedgerEntry.amount))
        .where(LedgerEntry.kind == EntryKind.REFUND.value).group_by(LedgerEntry.hold_id, LedgerEntry.wallet_id))
    for hold_id, wallet_id, count, total, smallest in refunds:
        hold = db.session.get(Hold, hold_id) if hold_id is not None else None
        if hold is None or hold.status != HoldStatus.SETTLED.value or hold.wallet_id != wallet_id:
            problems.append(f"{count} refund entries on wallet {wallet_id} belong to no settled hold of it (hold {hold_id})")
        elif smallest <= 0 or total > (hold.charged or 0):
            problems.append(f"hold {hold_id} (wallet {wallet_id}): refunds {total} exceed its charge {hold.charged} "
                            "or include a non-positive entry")
    return problems
