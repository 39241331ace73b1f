"""What an upstream's answer says about its channel, read the same way by the gateway and the admin test button:
the model it answered as (redacted and bounded), whether that is a mismatch, and the channel's health note of it."""
from __future__ import annotations

import time

from app.providers.redact import redact
from app.routing import health as channel_health
from app.routing.health import Health
from app.routing.planner import undated


def ms_since(started: float) -> int:
    """Whole milliseconds since a time.perf_counter() reading."""
    return int((time.perf_counter() - started) * 1000)


def served_model_of(reported: str | None, api_key: str | None) -> str | None:
    """The model an upstream says answered, fit for a receipt, a header or the audit log: no key, bounded length."""
    return redact(reported, api_key, limit=200) if reported else None


def is_mismatch(mapped_model: str | None, served_model: str | None) -> bool:
    """The upstream answered with another model than mapped; a dated snapshot of the mapped model still matches."""
    if not served_model or served_model == mapped_model:
        return False
    return undated(served_model) != undated(mapped_model or "")


def note_served_model(channel_id: int, health: Health, mapped_model: str | None, served_model: str | None) -> bool:
    """Keep the channel's observed-mismatch note in step with this answer (a write only when it changes); True on a mismatch."""
    mismatch = is_mismatch(mapped_model, served_model)
    if mismatch != bool(health.observed_mismatch):
        channel_health.record_observed_mismatch(channel_id, served_model if mismatch else None)
    return mismatch
