"""Opening wallets and crediting them; every movement writes a ledger entry."""
from __future__ import annotations

from sqlalchemy import update

from app.billing.models import EntryKind, LedgerEntry, Wallet, WalletKind
from app.database import write_transaction
from app.errors import ServiceError
from app.extensions import db


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


def post_entry(wallet_id: int, kind: EntryKind, amount: int, balance_after: int,
               memo: str = "", hold_id: int | None = None) -> LedgerEntry:
    """Append a ledger entry inside the caller's write transaction."""
    entry = LedgerEntry(wallet_id=wallet_id, kind=kind.value, amount=amount,
                        balance_after=balance_after, memo=memo[:200], hold_id=hold_id)
    db.session.add(entry)
    db.session.flush()
    return entry


def credit(wallet_id: int, amount: int, kind: EntryKind = EntryKind.TOPUP, memo: str = "") -> LedgerEntry:
    """Add a positive amount to a wallet's balance with its ledger entry."""
    if not isinstance(amount, int) or amount <= 0:
        raise InvalidAmount("the amount must be greater than zero")
    with write_transaction():
        balance_after = db.session.execute(
            update(Wallet)
            .where(Wallet.id == wallet_id)
            .values(balance=Wallet.balance + amount)
            .returning(Wallet.balance)
        ).scalar_one()
        entry = post_entry(wallet_id, kind, amount, balance_after, memo)
    return entry
