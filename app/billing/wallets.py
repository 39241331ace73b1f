"""Opening wallets and crediting them; every movement writes a ledger entry."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, update

from app.billing.models import EntryKind, LedgerEntry, Wallet, WalletKind
from app.database import execute, utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.runtime import runtime


# Far below what a 64-bit column holds, so no series of top-ups can overflow a balance.
MAX_BALANCE_MICROS = 10**15  # $1,000,000,000


class InvalidAmount(ServiceError):
    """An amount that is zero, negative or malformed where a positive one is needed."""


def open_wallets(user_id: int) -> list[Wallet]:
    """Create the credit and routed wallets of a new user, in the caller's transaction."""
    wallets = [Wallet(user_id=user_id, kind=kind.value, balance=0, reserved=0) for kind in WalletKind]
    db.session.add_all(wallets)
    return wallets


def wallets_of(user_id: int) -> dict[str, Wallet]:
    """Return a user's wallets keyed by kind."""
    rows = db.session.scalars(db.select(Wallet).where(Wallet.user_id == user_id))
    return {w.kind: w for w in rows}


def wallet_ids(user_id: int) -> dict[str, int]:
    """A user's wallet ids by kind, cached: they never change once opened."""
    cache = runtime().cache("wallet_ids")
    ids = cache.get(user_id)
    if ids is None:
        ids = dict(db.session.execute(db.select(Wallet.kind, Wallet.id).where(Wallet.user_id == user_id)).all())
        if len(ids) == len(WalletKind):
            cache.put(user_id, ids)
    return ids


def wallet_of(user_id: int, kind: str) -> Wallet:
    """Return one of a user's wallets."""
    if kind not in {k.value for k in WalletKind}:
        raise ServiceError(f"unknown wallet {kind!r}: use credit or routed")
    wallet = db.session.scalar(
        db.select(Wallet).where(Wallet.user_id == user_id, Wallet.kind == kind)
    )
    if wallet is None:
        raise ServiceError(f"user {user_id} has no {kind} wallet")
    return wallet


INSERT_ENTRY = insert(LedgerEntry.__table__).returning(LedgerEntry.__table__.c.id)


@dataclass(frozen=True)
class PostedEntry:
    """A ledger entry just written."""

    id: int
    wallet_id: int
    amount: int
    balance_after: int


def post_entry(wallet_id: int, kind: EntryKind, amount: int, balance_after: int,
               memo: str = "", hold_id: int | None = None) -> PostedEntry:
    """Append a ledger entry inside the caller's write transaction (one INSERT, on the hot path)."""
    entry_id = execute(
        INSERT_ENTRY,
        {"wallet_id": wallet_id, "kind": kind.value, "amount": amount, "balance_after": balance_after,
         "memo": memo[:200], "hold_id": hold_id, "created_at": utcnow()}).scalar_one()
    return PostedEntry(entry_id, wallet_id, amount, balance_after)


def credit(wallet_id: int, amount: int, kind: EntryKind = EntryKind.TOPUP, memo: str = "") -> PostedEntry:
    """Add a positive amount to a wallet's balance with its ledger entry."""
    if not isinstance(amount, int) or amount <= 0:
        raise InvalidAmount("the amount must be greater than zero")
    with write_transaction():
        balance_after = db.session.execute(
            update(Wallet)
            .where(Wallet.id == wallet_id, Wallet.balance + amount <= MAX_BALANCE_MICROS)
            .values(balance=Wallet.balance + amount)
            .returning(Wallet.balance)
        ).scalar()
        if balance_after is None:
            raise InvalidAmount(f"a wallet holds at most ${MAX_BALANCE_MICROS // 1_000_000:,}")
        entry = post_entry(wallet_id, kind, amount, balance_after, memo)
    return entry
