"""Channel health: circuits and cooldowns kept in the database, shared by every worker and node."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from app.database import utcnow, write_transaction
from app.extensions import db

TRIP_AFTER_FAILURES = 3
FIRST_COOLDOWN_S = 30
MAX_COOLDOWN_S = 600
RATE_LIMIT_COOLDOWN_S = 30
CACHE_TTL_S = 1.0  # other nodes' failures are seen within this


class ChannelHealth(db.Model):
    """The circuit of one channel: failures in a row, cooldown, rejected key, probe claim."""

    __tablename__ = "channel_health"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    trips: Mapped[int] = mapped_column(default=0)
    cooldown_until: Mapped[datetime | None] = mapped_column(default=None)
    key_rejected: Mapped[bool] = mapped_column(default=False)
    probe_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error_class: Mapped[str | None] = mapped_column(String(30), default=None)
    last_error_at: Mapped[datetime | None] = mapped_column(default=None)
    last_ok_at: Mapped[datetime | None] = mapped_column(default=None)
    observed_mismatch: Mapped[str | None] = mapped_column(String(200), default=None)


@dataclass(frozen=True)
class Health:
    """A cached view of one channel's circuit."""

    consecutive_failures: int = 0
    trips: int = 0
    cooldown_until: datetime | None = None
    key_rejected: bool = False
    last_error_class: str | None = None
    observed_mismatch: str | None = None

    def cooling(self, now: datetime) -> bool:
        return self.cooldown_until is not None and self.cooldown_until > now

    def probe_due(self, now: datetime) -> bool:
        """The cooldown has ended and the circuit waits for a probe to close it."""
        return self.cooldown_until is not None and self.cooldown_until <= now

    @property
    def clean(self) -> bool:
        return (self.consecutive_failures == 0 and self.cooldown_until is None and not self.key_rejected)


HEALTHY = Health()
_cache: dict[str, object] = {"at": 0.0, "rows": {}}
_cache_lock = threading.Lock()


def current_health() -> dict[int, Health]:
    """Every channel's health, read at most once a second per process."""
    now = time.monotonic()
    if now - _cache["at"] < CACHE_TTL_S:
        return _cache["rows"]
    rows = {
        h.channel_id: Health(h.consecutive_failures, h.trips, h.cooldown_until, h.key_rejected,
                             h.last_error_class, h.observed_mismatch)
        for h in db.session.scalars(db.select(ChannelHealth))
    }
    with _cache_lock:
        _cache.update(at=now, rows=rows)
    return rows


def forget_cached_health() -> None:
    """Drop this process's cached view, after a local change or in tests."""
    with _cache_lock:
        _cache.update(at=0.0, rows={})


def _ensure_row(channel_id: int) -> ChannelHealth:
    """The channel's health row, created on first use, locked for this write transaction."""
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    db.session.execute(insert(ChannelHealth).values(channel_id=channel_id).on_conflict_do_nothing())
    return db.session.scalar(db.select(ChannelHealth).where(ChannelHealth.channel_id == channel_id)
                             .with_for_update().execution_options(populate_existing=True))


def cooldown_after_trips(trips: int) -> int:
    """Seconds a circuit cools after its n-th trip in a row: 30 s doubling up to 10 min."""
    return min(FIRST_COOLDOWN_S * 2 ** max(trips - 1, 0), MAX_COOLDOWN_S)


def record_failure(channel_id: int, error_class: str, retry_after: float | None = None,
                   was_probe: bool = False, now: datetime | None = None) -> None:
    """Count a fallback-worthy failure; trip the circuit, cool a 429, or hold a rejected key."""
    now = now or utcnow()
    with write_transaction():
        row = _ensure_row(channel_id)
        row.last_error_class, row.last_error_at, row.probe_until = error_class, now, None
        if error_class == "key_rejected":
            row.key_rejected = True
        elif error_class == "rate_limited":
            seconds = retry_after if retry_after is not None else RATE_LIMIT_COOLDOWN_S
            row.cooldown_until = max(row.cooldown_until or now, now + timedelta(seconds=seconds))
        else:
            row.consecutive_failures += 1
            if was_probe or row.consecutive_failures >= TRIP_AFTER_FAILURES:
                row.trips += 1
                row.consecutive_failures = 0
                row.cooldown_until = now + timedelta(seconds=cooldown_after_trips(row.trips))
    forget_cached_health()


def record_success(channel_id: int, was_probe: bool, health: Health, now: datetime | None = None) -> None:
    """Close the circuit after a success, writing only when there was something to clear."""
    if health.clean and not was_probe:
        return
    now = now or utcnow()
    with write_transaction():
        db.session.execute(
            update(ChannelHealth).where(ChannelHealth.channel_id == channel_id)
            .values(consecutive_failures=0, trips=0, cooldown_until=None, probe_until=None, last_ok_at=now)
            .execution_options(synchronize_session=False))
    forget_cached_health()


def record_observed_mismatch(channel_id: int, served_model: str | None) -> None:
    """Remember (or clear) that a channel answered with a model other than the mapped one."""
    with write_transaction():
        row = _ensure_row(channel_id)
        row.observed_mismatch = served_model
    forget_cached_health()


def claim_probe(channel_id: int, hold_s: float, now: datetime | None = None) -> bool:
    """Let exactly one request probe a channel whose cooldown ended; True if this one may."""
    now = now or utcnow()
    with write_transaction():
        claimed = db.session.execute(
            update(ChannelHealth)
            .where(ChannelHealth.channel_id == channel_id, ChannelHealth.cooldown_until <= now,
                   (ChannelHealth.probe_until.is_(None)) | (ChannelHealth.probe_until < now))
            .values(probe_until=now + timedelta(seconds=hold_s))
            .execution_options(synchronize_session=False)).rowcount
    return claimed == 1


def clear_key_rejected(channel_id: int) -> None:
    """An admin changed the key: let the channel be tried again."""
    with write_transaction():
        db.session.execute(update(ChannelHealth).where(ChannelHealth.channel_id == channel_id)
                           .values(key_rejected=False).execution_options(synchronize_session=False))
    forget_cached_health()
