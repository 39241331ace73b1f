"""Sign-up, sign-in, and issuing, verifying and revoking API keys."""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts.models import ApiKey, User
from app.billing.models import LANES
from app.billing.wallets import open_wallets
from app.database import utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KEY_PREFIX = "wb-"
MIN_PASSWORD_LENGTH = 8


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding space."""
    return email.strip().lower()


def find_user(email: str) -> User:
    """Return the user with this email or raise ServiceError."""
    user = db.session.scalar(db.select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise ServiceError(f"no user with email {email!r}")
    return user


def create_user(email: str, password: str, is_admin: bool = False) -> User:
    """Create a user with its two empty wallets."""
    email = normalize_email(email)
    if not EMAIL.match(email):
        raise ServiceError(f"{email!r} is not an email address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    try:
        with write_transaction():
            if db.session.scalar(db.select(func.count()).where(User.email == email)):
                raise ServiceError(f"a user with email {email!r} already exists")
            user = User(email=email, password_hash=generate_password_hash(password), is_admin=is_admin)
            db.session.add(user)
            db.session.flush()
            open_wallets(user.id)
    except IntegrityError:
        raise ServiceError(f"a user with email {email!r} already exists") from None
    return user


def authenticate(email: str, password: str) -> User | None:
    """Return the enabled user whose password matches, else None."""
    user = db.session.scalar(db.select(User).where(User.email == normalize_email(email)))
    if user is None or user.disabled or not check_password_hash(user.password_hash, password):
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
              known_models: set[str] | None = None) -> IssuedKey:
    """Create an API key for a user, checking its model scope and lanes."""
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
                     key_hash=hash_key(secret), models=models, lanes=lanes, expires_at=expires_at)
        db.session.add(key)
    return IssuedKey(key=key, secret=secret)


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
    spent: int


KEY_CACHE_TTL_S = 1.0  # a revoked or changed key takes effect within this on every worker
_grants: dict[str, tuple[float, KeyGrant | None]] = {}


def lookup_key(secret: str) -> KeyGrant | None:
    """verify_key for the request path, cached for a second per process."""
    digest, now = hash_key(secret), time.monotonic()
    cached = _grants.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    key = verify_key(secret)
    grant = None if key is None else KeyGrant(
        key.user_id, key.id, tuple(key.lanes or LANES), tuple(key.models) if key.models is not None else None,
        key.rpm_limit, key.spend_cap, key.spent)
    if len(_grants) > 10_000:
        _grants.clear()  # bounded: a flood of unknown keys must not grow it without end
    _grants[digest] = (now + KEY_CACHE_TTL_S, grant)
    return grant


def forget_cached_keys() -> None:
    """Drop this process's cached key lookups."""
    _grants.clear()
