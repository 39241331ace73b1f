"""Attempt counters in the database, so every worker and node agrees: sign-ins, redeem codes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.accounts.models import LoginThrottle
from app.database import execute, utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.runtime import runtime

PRUNE_EVERY_S = 60  # how often one process deletes a scope's counters whose window has passed
THROTTLE = LoginThrottle.__table__


@dataclass(frozen=True)
class Counter:
    """One subject counted in one scope: at most `limit` attempts per window."""

    scope: str  # at most 10 characters: "account", "address", "redeem"
    subject: str  # at most 64 characters
    limit: int


class Throttled(ServiceError):
    """A counter has no attempts left in its window; retry_after_s says when it has."""

    def __init__(self, retry_after_s: int, message: str = "Too many attempts."):
        minutes = math.ceil(retry_after_s / 60)
        super().__init__(f"{message} Try again in {minutes} minute{'' if minutes == 1 else 's'}.")
        self.retry_after_s = retry_after_s


def count_attempt(counters: list[Counter], window: timedelta) -> None:
    """Count one attempt against every counter, or count none and raise Throttled."""
    now = utcnow()
    with write_transaction():
        for counter in counters:
            _prune(counter.scope, now - window)
        # Callers pass their counters in one fixed order: two transactions never wait on each other in a cycle.
        for counter in counters:
            if not _take_one(counter, now, window):
                started = db.session.scalar(db.select(LoginThrottle.window_start).where(
                    LoginThrottle.scope == counter.scope, LoginThrottle.subject == counter.subject))
                raise Throttled(max(1, math.ceil((started + window - now).total_seconds())))


def _take_one(counter: Counter, now: datetime, window: timedelta) -> bool:
    """One guarded upsert: count an attempt unless this window already holds `limit` of them; True if counted."""
    # Counted before the attempt is checked, so concurrent guesses cannot all slip in under the limit.
    expired = THROTTLE.c.window_start <= now - window
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    fresh = insert(THROTTLE).values(scope=counter.scope, subject=counter.subject, window_start=now, failures=1)
    statement = fresh.on_conflict_do_update(
        index_elements=[THROTTLE.c.scope, THROTTLE.c.subject],
        set_={"failures": case((expired, 1), else_=THROTTLE.c.failures + 1),
              "window_start": case((expired, now), else_=THROTTLE.c.window_start)},
        where=expired | (THROTTLE.c.failures < counter.limit)).returning(THROTTLE.c.failures)
    return execute(statement).first() is not None  # no row back: the guard refused the update


def clear(scope: str, subject: str) -> None:
    """Forget a subject's count: it starts again from zero."""
    with write_transaction():
        execute(delete(THROTTLE).where(THROTTLE.c.scope == scope, THROTTLE.c.subject == subject))


def take_back_one(scope: str, subject: str) -> None:
    """Give back one counted attempt, for an attempt that turned out to succeed."""
    with write_transaction():
        execute(update(THROTTLE).where(THROTTLE.c.scope == scope, THROTTLE.c.subject == subject,
                                       THROTTLE.c.failures > 0).values(failures=THROTTLE.c.failures - 1))


def _prune(scope: str, cutoff: datetime) -> None:
    """Delete a scope's counters whose window has passed, at most once a minute per process, so the table stays small."""
    pruned = runtime().cache("throttle_pruned", ttl_s=PRUNE_EVERY_S)
    if not pruned.get(scope):
        execute(delete(THROTTLE).where(THROTTLE.c.scope == scope, THROTTLE.c.window_start <= cutoff))
        pruned.put(scope, True)
