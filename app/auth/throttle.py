"""Sign-in throttling per account and per address, counted in the database so every worker and node agrees."""
from __future__ import annotations

import hashlib
import ipaddress
import math
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.accounts.models import LoginThrottle, User
from app.accounts.service import authenticate, normalize_email
from app.database import execute, utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.runtime import runtime

ACCOUNT, ADDRESS = "account", "address"
LIMIT_SETTINGS = {ACCOUNT: "WAYBILL_LOGIN_MAX_FAILURES_PER_ACCOUNT", ADDRESS: "WAYBILL_LOGIN_MAX_FAILURES_PER_ADDRESS"}
PRUNE_EVERY_S = 60  # how often one process deletes counters whose window has passed
THROTTLE = LoginThrottle.__table__


class LoginThrottled(ServiceError):
    """Too many failed sign-ins for an account or from an address; retry_after_s says when to try again."""

    def __init__(self, retry_after_s: int):
        minutes = math.ceil(retry_after_s / 60)
        super().__init__(f"Too many failed sign-ins for this account or from this address. "
                         f"Try again in {minutes} minute{'' if minutes == 1 else 's'}.")
        self.retry_after_s = retry_after_s


def sign_in(email: str, password: str, address: str | None) -> User | None:
    """The user whose password matches; LoginThrottled, unchecked, when the account or address has no tries left."""
    subjects = {ACCOUNT: _digest(normalize_email(email)), ADDRESS: _digest(_address_block(address))}
    _count_attempt(subjects)
    user = authenticate(email, password)
    if user is not None:
        _forgive(subjects)
    return user


def _digest(text: str) -> str:
    """What the table keeps of an email or address: typed emails that match no account stay unreadable."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _address_block(address: str | None) -> str:
    """The address counted: an IPv4 address, or an IPv6 /64, which one host can hop across at will."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


def _count_attempt(subjects: dict[str, str]) -> None:
    """Count one attempt against both subjects, or count none and raise LoginThrottled."""
    window = timedelta(seconds=current_app.config["WAYBILL_LOGIN_WINDOW_S"])
    now = utcnow()
    with write_transaction():
        _prune(now - window)
        for scope in (ADDRESS, ACCOUNT):  # one fixed order: two transactions never wait on each other in a cycle
            if not _take_one(scope, subjects[scope], current_app.config[LIMIT_SETTINGS[scope]], now, window):
                started = db.session.scalar(db.select(LoginThrottle.window_start).where(
                    LoginThrottle.scope == scope, LoginThrottle.subject == subjects[scope]))
                raise LoginThrottled(max(1, math.ceil((started + window - now).total_seconds())))


def _take_one(scope: str, subject: str, limit: int, now: datetime, window: timedelta) -> bool:
    """One guarded upsert: count an attempt unless this window already holds `limit` of them; True if counted."""
    # Counted before the password is checked, so concurrent guesses cannot all slip in under the limit.
    expired = THROTTLE.c.window_start <= now - window
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    fresh = insert(THROTTLE).values(scope=scope, subject=subject, window_start=now, failures=1)
    statement = fresh.on_conflict_do_update(
        index_elements=[THROTTLE.c.scope, THROTTLE.c.subject],
        set_={"failures": case((expired, 1), else_=THROTTLE.c.failures + 1),
              "window_start": case((expired, now), else_=THROTTLE.c.window_start)},
        where=expired | (THROTTLE.c.failures < limit)).returning(THROTTLE.c.failures)
    return execute(statement).first() is not None  # no row back: the guard refused the update


def _forgive(subjects: dict[str, str]) -> None:
    """A success clears the account's count, and takes back only its own attempt from the address's."""
    # Clearing the address too would let someone with an account of their own reset it between guesses.
    with write_transaction():
        execute(delete(THROTTLE).where(THROTTLE.c.scope == ACCOUNT, THROTTLE.c.subject == subjects[ACCOUNT]))
        execute(update(THROTTLE).where(THROTTLE.c.scope == ADDRESS, THROTTLE.c.subject == subjects[ADDRESS],
                                       THROTTLE.c.failures > 0).values(failures=THROTTLE.c.failures - 1))


def _prune(cutoff: datetime) -> None:
    """Delete counters whose window has passed, at most once a minute per process, so the table stays small."""
    pruned = runtime().cache("login_throttle_pruned", ttl_s=PRUNE_EVERY_S)
    if not pruned.get(True):
        execute(delete(THROTTLE).where(THROTTLE.c.window_start <= cutoff))
        pruned.put(True, True)
