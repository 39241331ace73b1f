"""Redeem codes: minted for one kind of wallet and an amount, stored hashed, each redeemable once."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

from sqlalchemy import update

from app.accounts.throttle import Counter, Throttled, count_attempt, take_back_one
from app.audit_trail.service import record_change
from app.billing.models import RedeemCode, WalletKind
from app.billing.pricing import MAX_AMOUNT_MICROS, format_usd, usd_limit
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


CODES_PAGE_SIZE = 50
CODE_STATES = ("unused", "used", "expired")
CSV_BATCH = 500


@dataclass(frozen=True)
class CodeRow:
    """One code as an admin lists it: never the code, only its prefix, with who made and who used it."""

    code: RedeemCode
    created_by: str | None
    redeemed_by: str | None
    state: str


def mint_batch(admin_id: int, wallet_kind: str, amount: int, count: int,
               expires_at: datetime | None = None) -> list[str]:
    """Mint codes for an admin and audit the batch (count, amount, wallet, expiry; never the codes)."""
    with write_transaction():
        codes = mint_codes(wallet_kind, amount, count, expires_at, created_by=admin_id)
        record_change(admin_id, "codes_minted", f"{count} {wallet_kind} code{'s' if count != 1 else ''}", None,
                      {"count": count, "amount": amount, "wallet": wallet_kind,
                       "expires": expires_at.strftime("%Y-%m-%d") if expires_at else None})
    return codes


def _codes_select(state: str = ""):
    """Codes newest first, narrowed to one state (unused, used, expired) or all."""
    now, codes = utcnow(), RedeemCode
    select = db.select(RedeemCode).order_by(codes.id.desc())
    unexpired = codes.expires_at.is_(None) | (codes.expires_at > now)
    if state == "used":
        select = select.where(codes.redeemed_at.is_not(None))
    elif state == "unused":
        select = select.where(codes.redeemed_at.is_(None), unexpired)
    elif state == "expired":
        select = select.where(codes.redeemed_at.is_(None), ~unexpired)
    return select


def _rows(codes: list[RedeemCode]) -> list[CodeRow]:
    """Codes with their creator's and redeemer's emails, looked up in one query."""
    from app.accounts.models import User  # accounts sits beside billing: imported only where a list names people
    ids = {code.created_by for code in codes} | {code.redeemed_by for code in codes}
    ids.discard(None)
    emails = dict(db.session.execute(db.select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    now = utcnow()
    return [CodeRow(code, emails.get(code.created_by), emails.get(code.redeemed_by), _state(code, now))
            for code in codes]


def _state(code: RedeemCode, now: datetime) -> str:
    if code.redeemed_at is not None:
        return "used"
    return "expired" if code.expires_at is not None and code.expires_at <= now else "unused"


def list_codes(state: str = "", page: int = 1, per_page: int = CODES_PAGE_SIZE) -> tuple[object, list[CodeRow]]:
    """A page of codes in one state (or all), as (pagination, rows)."""
    pagination = db.paginate(_codes_select(state), page=max(page, 1), per_page=per_page, error_out=False)
    return pagination, _rows(pagination.items)


def codes_csv(state: str = "") -> Iterator[list[str]]:
    """Every code in a state as CSV rows, header first: prefixes, never codes."""
    yield ["prefix", "wallet", "amount_usd", "state", "created_at", "created_by", "expires_at",
           "redeemed_at", "redeemed_by"]
    offset = 0
    while batch := list(db.session.scalars(_codes_select(state).limit(CSV_BATCH).offset(offset))):
        offset += len(batch)
        for row in _rows(batch):
            code = row.code
            yield [redacted(code.prefix), code.wallet_kind, format_usd(code.amount), row.state,
                   _iso(code.created_at), _inert(row.created_by or "command line"), _iso(code.expires_at),
                   _iso(code.redeemed_at), _inert(row.redeemed_by or "")]


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _inert(text: str) -> str:
    """Text a spreadsheet shows as text: a leading quote keeps a formula-like email from running."""
    return f"'{text}" if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text
