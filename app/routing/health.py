"""Channel health: circuits and cooldowns kept in the database, shared by every worker and node."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, update
from sqlalchemy import false as sa_false
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from app.database import utcnow, write_transaction
from app.extensions import db
from app.providers.base import ErrorClass
from app.runtime import TtlCache, runtime

TRIP_AFTER_FAILURES = 3
FIRST_COOLDOWN_S = 30
MAX_COOLDOWN_S = 600
RATE_LIMIT_COOLDOWN_S = 30
CACHE_TTL_S = 1.0  # other nodes' failures are seen within this
ONE_KEY_WINDOW_S = 300  # a run of failures from one key trips only if no other key used the channel in this


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
    # The key behind the current run of failures, and whether other keys failed in it too.
    failure_key_id: Mapped[int | None] = mapped_column(default=None)
    failures_from_many_keys: Mapped[bool] = mapped_column(default=False, server_default=sa_false())


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


def _cache() -> TtlCache:
    return runtime().cache("channel_health", ttl_s=CACHE_TTL_S)


def current_health() -> dict[int, Health]:
    """Every channel's health, read at most once a second per process."""
    rows = _cache().get("rows")
    if rows is None:
        rows = {
            h.channel_id: Health(h.consecutive_failures, h.trips, h.cooldown_until, h.key_rejected,
                                 h.last_error_class, h.observed_mismatch)
            for h in db.session.scalars(db.select(ChannelHealth))
        }
        _cache().put("rows", rows)
    return rows


def forget_cached_health() -> None:
    """Drop this process's cached view after a local change, so this worker sees it at once."""
    _cache().clear()


def _ensure_row(channel_id: int) -> ChannelHealth:
    """The channel's health row, created on first use, locked for this write transaction."""
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    db.session.execute(insert(ChannelHealth).values(channel_id=channel_id).on_conflict_do_nothing())
    return db.session.scalar(db.select(ChannelHealth).where(ChannelHealth.channel_id == channel_id)
                             .with_for_update().execution_options(populate_existing=True))


def cooldown_after_trips(trips: int) -> int:
    """Seconds a circuit cools after its n-th trip in a row: 30 s doubling up to 10 min."""
    return min(FIRST_COOLDOWN_S * 2 ** max(trips - 1, 0), MAX_COOLDOWN_S)


def record_failure(channel_id: int, error_class: str, retry_after: float | None = None, was_probe: bool = False,
                   key_id: int | None = None, others_used: Callable[[datetime], bool] | None = None) -> None:
    """Count a fallback-worthy failure; trip the circuit, cool a 429, or hold a rejected key.

    A failed probe re-trips at once, doubling the cooldown. Requests that were already in flight
    when the circuit tripped do not trip it again: only a probe escalates a cooling channel.
    One key's failures alone never open a circuit that other keys are served through, so a
    tenant's malformed requests cannot move everyone else's route: a run of failures from one
    key trips only when others_used(since) says no other key used the channel in the window.
    """
    now = utcnow()
    with write_transaction():
        row = _ensure_row(channel_id)
        row.last_error_class, row.last_error_at = str(error_class), now
        if was_probe:
            row.probe_until = None
        _count_failure(row, error_class, retry_after, was_probe, key_id, others_used, now)
    forget_cached_health()


def _count_failure(row: ChannelHealth, error_class: str, retry_after: float | None, was_probe: bool,
                   key_id: int | None, others_used: Callable[[datetime], bool] | None, now: datetime) -> None:
    if error_class == ErrorClass.RATE_LIMITED:
        seconds = retry_after if retry_after is not None else RATE_LIMIT_COOLDOWN_S
        row.cooldown_until = max(row.cooldown_until or now, now + timedelta(seconds=seconds))
        return
    if error_class == ErrorClass.KEY_REJECTED:
        row.key_rejected = True
    if row.cooldown_until is not None and row.cooldown_until > now and not was_probe:
        return  # already tripped: only a probe escalates a cooling channel
    if row.consecutive_failures == 0:
        row.failure_key_id, row.failures_from_many_keys = key_id, False
    elif key_id != row.failure_key_id:
        row.failures_from_many_keys = True
    row.consecutive_failures += 1
    run_trips = row.consecutive_failures >= TRIP_AFTER_FAILURES and (
        row.failures_from_many_keys or others_used is None
        or not others_used(now - timedelta(seconds=ONE_KEY_WINDOW_S)))
    if was_probe or row.key_rejected or run_trips:
        row.trips += 1
        row.consecutive_failures = 0
        row.cooldown_until = now + timedelta(seconds=cooldown_after_trips(row.trips))



def record_success(channel_id: int, was_probe: bool, health: Health) -> None:
    """Close the circuit after a success, writing only when there was something to clear."""
    if health.clean and not was_probe:
        return
    with write_transaction():
        db.session.execute(
            update(ChannelHealth).where(ChannelHealth.channel_id == channel_id)
            .values(consecutive_failures=0, trips=0, cooldown_until=None, probe_until=None, key_rejected=False,
                    last_ok_at=utcnow())
            .execution_options(synchronize_session=False))
    forget_cached_health()


def record_observed_mismatch(channel_id: int, served_model: str | None) -> None:
    """Remember (or clear) that a channel answered with a model other than the mapped one."""
    with write_transaction():
        row = _ensure_row(channel_id)
        row.observed_mismatch = served_model
    forget_cached_health()


def claim_probe(channel_id: int, hold_s: float, before_cooldown_ends: bool = False) -> bool:
    """Let exactly one request at a time probe a channel; True if this one may.

    A probe normally waits for the cooldown to end; when every step is cooling, the gateway
    probes the soonest one early, still one request at a time.
    """
    now = utcnow()
    conditions = [ChannelHealth.channel_id == channel_id,
                  (ChannelHealth.probe_until.is_(None)) | (ChannelHealth.probe_until < now)]
    if not before_cooldown_ends:
        conditions.append(ChannelHealth.cooldown_until <= now)
    with write_transaction():
        claimed = db.session.execute(
            update(ChannelHealth).where(*conditions).values(probe_until=now + timedelta(seconds=hold_s))
            .execution_options(synchronize_session=False)).rowcount
    return claimed == 1


def clear_key_rejected(channel_id: int) -> None:
    """The channel's key changed: close its circuit so the new key is tried at once."""
    with write_transaction():
        db.session.execute(update(ChannelHealth).where(ChannelHealth.channel_id == channel_id)
                           .values(key_rejected=False, cooldown_until=None, trips=0, consecutive_failures=0,
                                   probe_until=None)
                           .execution_options(synchronize_session=False))
    forget_cached_health()


def reset_cooldown(channel_id: int) -> None:
    """An admin ended the channel's cooldown and failure run: the next request tries it; a rejected key stays so."""
    with write_transaction():
        db.session.execute(update(ChannelHealth).where(ChannelHealth.channel_id == channel_id)
                           .values(cooldown_until=None, probe_until=None, trips=0, consecutive_failures=0)
                           .execution_options(synchronize_session=False))
    forget_cached_health()
