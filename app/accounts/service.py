"""Sign-up, sign-in, and issuing, verifying and revoking API keys."""
from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts.models import ApiKey, User, new_session_nonce
from app.billing.models import LANES
from app.billing.wallets import open_wallets
from app.database import execute, utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.runtime import TtlCache, runtime

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254  # RFC 5321's longest path, and the column's size
# Control and invisible format characters (NUL, escapes, bidi overrides): never part of a real address.
FORBIDDEN_EMAIL_CATEGORIES = {"Cc", "Cf"}
KEY_PREFIX = "wb-"
MAX_RPM = 1_000_000
MIN_PASSWORD_LENGTH = 8


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding space."""
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    """Why a normalized email cannot name an account, or None when it can."""
    if len(email) > MAX_EMAIL_LENGTH:
        return f"an email has at most {MAX_EMAIL_LENGTH} characters, this one has {len(email)}"
    if any(unicodedata.category(char) in FORBIDDEN_EMAIL_CATEGORIES for char in email):
        return "an email may not contain control characters"
    if not EMAIL.match(email):
        return f"{email!r} is not an email address"
    return None


def _user_by_email(email: str) -> User | None:
    """The user with this email; None without a query for one no account can have (PostgreSQL refuses NUL)."""
    email = normalize_email(email)
    if email_problem(email):
        return None
    return db.session.scalar(db.select(User).where(User.email == email))


def find_user(email: str) -> User:
    """Return the user with this email or raise ServiceError."""
    user = _user_by_email(email)
    if user is None:
        raise ServiceError(email_problem(normalize_email(email)) or f"no user with email {email!r}")
    return user


def _check_new_password(password: str) -> None:
    """Refuse a password too short to keep."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def create_user(email: str, password: str, is_admin: bool = False) -> User:
    """Create a user with its two empty wallets."""
    email = normalize_email(email)
    problem = email_problem(email)
    if problem:
        raise ServiceError(problem)
    _check_new_password(password)
    password_hash = generate_password_hash(password)  # slow on purpose: outside the write lock
    try:
        with write_transaction():
            if db.session.scalar(db.select(func.count()).where(User.email == email)):
                raise ServiceError(f"a user with email {email!r} already exists")
            user = User(email=email, password_hash=password_hash, is_admin=is_admin)
            db.session.add(user)
            db.session.flush()
            open_wallets(user.id)
    except IntegrityError:
        raise ServiceError(f"a user with email {email!r} already exists") from None
    return user


@functools.cache
def _dummy_password_hash() -> str:
    """A hash of a random password, made like real ones, to check against when no account matches."""
    return generate_password_hash(secrets.token_urlsafe(16))


def authenticate(email: str, password: str) -> User | None:
    """Return the enabled user whose password matches, else None."""
    user = _user_by_email(email)
    # Every path checks exactly one hash, so the time taken does not tell which emails have accounts.
    matches = check_password_hash(user.password_hash if user else _dummy_password_hash(), password)
    return user if matches and user is not None and not user.disabled else None


def set_password(email: str, password: str) -> User:
    """Give a user a new password and end every session they have."""
    _check_new_password(password)
    user = find_user(email)
    end_sessions(user.id, password_hash=generate_password_hash(password))
    return user


def end_sessions(user_id: int, **changes) -> None:
    """Rotate a user's session nonce (with any other changes), so their signed cookies stop working everywhere."""
    with write_transaction():
        db.session.execute(update(User).where(User.id == user_id)
                           .values(session_nonce=new_session_nonce(), **changes)
                           .execution_options(synchronize_session=False))


def user_for_session(session_id: str) -> User | None:
    """The enabled user a session names, unless their nonce was rotated since it was signed."""
    user_id, _, nonce = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.disabled or not hmac.compare_digest(user.session_nonce.encode(), nonce.encode()):
        return None
    return user


def hash_key(secret: str) -> str:
    """SHA-256 of a key: keys are long random secrets, so a fast hash suffices and allows lookup."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key: the secret is shown once and never stored."""

    key: ApiKey
    secret: str


def issue_key(user: User, name: str = "default", models: list[str] | None = None,
              lanes: list[str] | None = None, expires_at: datetime | None = None,
              known_models: set[str] | None = None, spend_cap: int | None = None,
              rpm_limit: int | None = None) -> IssuedKey:
    """Create an API key for a user, checking its model scope, lanes and limits."""
    if spend_cap is not None and spend_cap <= 0:
        raise ServiceError("the spend cap must be greater than zero")
    if rpm_limit is not None and not 0 < rpm_limit <= MAX_RPM:
        raise ServiceError(f"the requests-per-minute limit must be between 1 and {MAX_RPM}")
    if expires_at is not None and expires_at <= utcnow():
        raise ServiceError("the expiry date must be in the future")
    lanes = list(lanes) if lanes else list(LANES)
    unknown_lanes = [lane for lane in lanes if lane not in LANES]
    if unknown_lanes:
        raise ServiceError(f"unknown lane {unknown_lanes[0]!r}: use official and/or routed")
    if models is not None:
        missing = [m for m in models if known_models is not None and m not in known_models]
        if missing:
            raise ServiceError(f"unknown model {missing[0]!r} in --models")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        key = ApiKey(user_id=user.id, name=name.strip()[:100] or "default", prefix=secret[:10],
                     key_hash=hash_key(secret), models=models, lanes=lanes, expires_at=expires_at,
                     spend_cap=spend_cap, rpm_limit=rpm_limit)
        db.session.add(key)
    return IssuedKey(key=key, secret=secret)


def keys_of(user_id: int) -> list[ApiKey]:
    """A user's keys, newest first, revoked and expired ones included."""
    return list(db.session.scalars(db.select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc())))


def verify_key(secret: str, now: datetime | None = None) -> ApiKey | None:
    """Return the usable key matching a presented secret, else None."""
    row = db.session.execute(db.select(ApiKey, User.disabled).join(User, User.id == ApiKey.user_id)
                             .where(ApiKey.key_hash == hash_key(secret))).first()
    if row is None or not row[0].is_usable(now or utcnow()) or row[1]:
        return None
    return row[0]


def revoke_key(user_id: int, key_id: int) -> bool:
    """Revoke one of a user's keys; False when the user has no such key."""
    with write_transaction():
        revoked = db.session.execute(
            update(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id).values(revoked=True)
            .execution_options(synchronize_session=False)
        ).rowcount
    forget_cached_keys()
    return revoked == 1


@dataclass(frozen=True)
class KeyGrant:
    """What a verified key allows, detached from the session so it can be cached."""

    user_id: int
    key_id: int
    lanes: tuple[str, ...]
    models: tuple[str, ...] | None
    rpm_limit: int | None
    spend_cap: int | None


KEY_CACHE_TTL_S = 1.0  # a changed key's lanes, models and limits take effect within this on every worker
LAST_USED_EVERY_S = 60  # last_used_at is written at most this often per key
NOT_FOUND = object()


# Checked on every request, even with a cached grant: a revoked key or a disabled user is refused at once
# on every worker and node (one primary-key read), while the key's facts stay cached.
STILL_ALLOWED = (db.select(ApiKey.id).join(User, User.id == ApiKey.user_id)
                 .where(ApiKey.id == bindparam("key"), ApiKey.revoked.is_(False), User.disabled.is_(False)))


def _grants() -> TtlCache:
    return runtime().cache("key_grants", ttl_s=KEY_CACHE_TTL_S)


def lookup_key(secret: str) -> KeyGrant | None:
    """verify_key for the request path, cached for a second per process; notes the key's use."""
    digest = hash_key(secret)
    grant = _grants().get(digest, NOT_FOUND)
    if grant is NOT_FOUND:
        key = verify_key(secret)
        grant = None if key is None else KeyGrant(
            key.user_id, key.id, tuple(key.lanes or LANES), tuple(key.models) if key.models is not None else None,
            key.rpm_limit, key.spend_cap)
        _grants().put(digest, grant)
    elif grant is not None and execute(STILL_ALLOWED, {"key": grant.key_id}).first() is None:
        return None
    if grant is not None:
        _note_use(grant.key_id)
    return grant


def _note_use(key_id: int) -> None:
    """Write last_used_at at most once a minute per key, across every worker (a guarded UPDATE)."""
    noted = runtime().cache("key_used", ttl_s=LAST_USED_EVERY_S)
    if noted.get(key_id):
        return
    now = utcnow()
    with write_transaction():
        db.session.execute(
            update(ApiKey).where(ApiKey.id == key_id, (ApiKey.last_used_at.is_(None))
                                 | (ApiKey.last_used_at <= now - timedelta(seconds=LAST_USED_EVERY_S)))
            .values(last_used_at=now).execution_options(synchronize_session=False))
    noted.put(key_id, True)


def forget_cached_keys() -> None:
    """Drop this process's cached key lookups, after a change that must apply at once."""
    _grants().clear()
