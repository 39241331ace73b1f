"""Redeem codes: minted for one kind of wallet and an amount, stored hashed, each redeemable once."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update

from app.accounts.throttle import Counter, Throttled, count_attempt, take_back_one
from app.billing.models import RedeemCode, WalletKind
from app.billing.pricing import MAX_AMOUNT_MICROS, usd_limit
from app.billing.wallets import PostedEntry, credit, wallet_ids
from app.database import execute, utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db

MAX_MINT_COUNT = 1000  # one run prints them all; a larger batch is a sign of a typo
# Crockford's base32 alphabet: no I, L, O or U, so a code read aloud or copied by hand stays unambiguous.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS, GROUP_LENGTH = 4, 4  # 16 characters, 80 random bits: guessing one is hopeless at the rate limit below
CODE_TAG = "WB"
NOT_CODE_CHARACTERS = re.compile(r"[\s-]+")
MISREAD = str.maketrans("OIL", "011")
# A person redeeming codes they hold rarely fails ten times in a row; someone guessing always does.
REDEEM_MAX_FAILURES = 10
REDEEM_WINDOW = timedelta(minutes=15)
REDEEM_SCOPE = "redeem"


class CodeRefused(ServiceError):
    """An unknown, used or expired code; one message for all three, so a failure reveals nothing about a code."""

    def __init__(self):
        super().__init__("That code is not valid: it may be mistyped, already used or expired.")


class RedeemThrottled(Throttled):
    """Too many failed codes from one user in the window."""

    def __init__(self, retry_after_s: int):
        super().__init__(retry_after_s, "Too many codes that did not work.")


@dataclass(frozen=True)
class Redeemed:
    """A code just redeemed: the wallet it credited, the amount and the ledger entry."""

    wallet_kind: str
    amount: int
    entry: PostedEntry


def normalize_code(text: str) -> str:
    """A code as hashed: its 16 characters in upper case, read the forgiving way Crockford's base32 allows.

    Spaces and dashes are dropped, the WB tag is optional, and O, I and L read as 0, 1 and 1.
    """
    code = NOT_CODE_CHARACTERS.sub("", text).upper()
    if len(code) == len(CODE_TAG) + CODE_GROUPS * GROUP_LENGTH:
        code = code.removeprefix(CODE_TAG)
    return code.translate(MISREAD)


def hash_code(text: str) -> str:
    """What the table keeps of a code: a database leak yields no usable code."""
    return hashlib.sha256(normalize_code(text).encode("utf-8", "surrogatepass")).hexdigest()


def _new_code() -> str:
    """A fresh random code, WB-XXXX-XXXX-XXXX-XXXX."""
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(CODE_GROUPS))
    return "-".join((CODE_TAG, *groups))


def redacted(prefix: str) -> str:
    """A code as memos and lists show it: its first group only."""
    return f"{prefix}…"


def mint_codes(wallet_kind: str, amount: int, count: int = 1, expires_at: datetime | None = None,
               created_by: int | None = None) -> list[str]:
    """Create `count` codes worth `amount` micro-USD on a wallet kind; the codes, which are never stored."""
    if wallet_kind not in {kind.value for kind in WalletKind}:
        raise ServiceError(f"unknown wallet {wallet_kind!r}: use credit or routed")
    if not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT_MICROS:
        raise ServiceError(f"a code's amount must be above zero and at most {usd_limit(MAX_AMOUNT_MICROS)}")
    if not 1 <= count <= MAX_MINT_COUNT:
        raise ServiceError(f"mint between 1 and {MAX_MINT_COUNT} codes at once")
    if expires_at is not None and expires_at <= utcnow():
        raise ServiceError("the expiry date has already passed")
    codes = [_new_code() for _ in range(count)]
    with write_transaction():
        db.session.add_all(RedeemCode(code_hash=hash_code(code), prefix=code[:len(CODE_TAG) + 1 + GROUP_LENGTH],
                                      wallet_kind=wallet_kind, amount=amount, expires_at=expires_at,
                                      created_by=created_by, created_at=utcnow()) for code in codes)
    return codes


def redeem_code(user_id: int, text: str) -> Redeemed:
    """Credit the code's wallet of this user, once; CodeRefused or RedeemThrottled change nothing."""
    counter = Counter(REDEEM_SCOPE, str(user_id), REDEEM_MAX_FAILURES)
    try:
        count_attempt([counter], REDEEM_WINDOW)  # before the code is checked: parallel guesses count too
    except Throttled as refused:
        raise RedeemThrottled(refused.retry_after_s) from None
    redeemed = _redeem(user_id, text)
    take_back_one(counter.scope, counter.subject)  # only failures count against the limit
    return redeemed


def _redeem(user_id: int, text: str) -> Redeemed:
    """Mark the code redeemed and credit the wallet in one transaction; the guarded UPDATE lets one caller win."""
    now = utcnow()
    codes = RedeemCode.__table__.c
    with write_transaction():
        claimed = execute(
            update(RedeemCode.__table__)
            .where(codes.code_hash == hash_code(text), codes.redeemed_at.is_(None),
                   codes.expires_at.is_(None) | (codes.expires_at > now))
            .values(redeemed_at=now, redeemed_by=user_id)
            .returning(codes.id, codes.wallet_kind, codes.amount, codes.prefix)).first()
        if claimed is None:  # unknown, used or expired: nothing was written
            raise CodeRefused()
        entry = credit(wallet_ids(user_id)[claimed.wallet_kind], claimed.amount,
                       memo=f"redeem code {redacted(claimed.prefix)}")
        execute(update(RedeemCode.__table__).where(codes.id == claimed.id).values(ledger_entry_id=entry.id))
    return Redeemed(claimed.wallet_kind, claimed.amount, entry)
