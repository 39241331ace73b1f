"""What admins do to accounts: find users, top up their wallets, disable and enable them."""
from __future__ import annotations

from flask_sqlalchemy.pagination import Pagination

from app.accounts.models import User
from app.accounts.service import end_sessions, forget_cached_keys
from app.audit_trail.service import record_change
from app.billing.models import Wallet, WalletKind
from app.billing.wallets import PostedEntry, credit, wallet_of
from app.database import write_transaction
from app.errors import ServiceError
from app.extensions import db

USERS_PAGE_SIZE = 25
MAX_MEMO_LENGTH = 120  # the ledger memo adds "top-up by <admin email>: " and keeps 200 characters


def search_users(query: str = "", page: int = 1, per_page: int = USERS_PAGE_SIZE) -> Pagination:
    """Users whose email contains the query (emails are stored lower-case), by email."""
    select = db.select(User).order_by(User.email)
    text = query.strip().lower()
    if text:
        select = select.where(User.email.contains(text, autoescape=True))
    return db.paginate(select, page=max(page, 1), per_page=per_page, error_out=False)


def balances_of(user_ids) -> dict[int, dict[str, Wallet]]:
    """Each user's wallets keyed by kind, for a page of users in one query."""
    found: dict[int, dict[str, Wallet]] = {}
    ids = list(user_ids)
    if ids:
        for wallet in db.session.scalars(db.select(Wallet).where(Wallet.user_id.in_(ids))):
            found.setdefault(wallet.user_id, {})[wallet.kind] = wallet
    return found


def get_user(user_id: int) -> User | None:
    """The user with this id, or None."""
    return db.session.get(User, user_id)


def top_up(admin: User, user_id: int, kind: str, amount: int, memo: str) -> PostedEntry:
    """Credit one of a user's wallets; the ledger memo names the admin, and the audit trail records it."""
    memo = " ".join(memo.split())
    if not memo:
        raise ServiceError("say why in the memo: the user sees it in their ledger")
    if len(memo) > MAX_MEMO_LENGTH:
        raise ServiceError(f"a memo has at most {MAX_MEMO_LENGTH} characters")
    user = get_user(user_id)
    if user is None:
        raise ServiceError(f"no user {user_id}")
    wallet = wallet_of(user.id, kind)
    with write_transaction():
        entry = credit(wallet.id, amount, memo=f"top-up by {admin.email}: {memo}")
        record_change(admin.id, "wallet_topped_up", f"{WalletKind(kind).value} wallet of {user.email}",
                      before={"balance": entry.balance_after - amount},
                      after={"balance": entry.balance_after, "amount": amount, "ledger_entry": entry.id, "memo": memo})
    return entry


def set_disabled(admin: User, user_id: int, disabled: bool) -> User:
    """Disable or enable a user: disabling ends their sessions, and their keys stop working at once."""
    user = get_user(user_id)
    if user is None:
        raise ServiceError(f"no user {user_id}")
    if disabled and user.id == admin.id:
        raise ServiceError("you cannot disable your own account")
    if user.disabled == disabled:
        return user
    with write_transaction():
        # One statement sets the flag and rotates the session nonce, so every signed cookie dies with it.
        end_sessions(user.id, disabled=disabled)
        record_change(admin.id, "user_disabled" if disabled else "user_enabled", user.email,
                      before={"disabled": not disabled}, after={"disabled": disabled})
    forget_cached_keys()
    db.session.refresh(user)
    return user
