"""The admin test button: one tiny request to one channel, recorded in its health, charged to nobody.

It calls the provider adapter as the gateway's `_try` does (same UpstreamCall and timeout) and reads the
answer with the same functions (app/gateway/answered.py), but with no hold, no receipt and no ledger
entry: nobody asked for an answer.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from app.audit_trail.service import record_change
from app.catalog.models import Model
from app.database import utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.gateway.answered import ms_since, note_served_model, served_model_of
from app.gateway.receipts import error_label
from app.providers.base import UpstreamCall, UpstreamError
from app.providers.registry import adapter_for
from app.routing import health as channel_health
from app.routing.admin import channel_info, get_channel
from app.routing.health import HEALTHY

PROBE_TEXT = "ping"
PROBE_MAX_TOKENS = 1

class ProbeRefused(ServiceError):
    """The channel cannot be tested as it stands (no key, no mapping); nothing was sent."""


@dataclass(frozen=True)
class ProbeResult:
    """What one test of a channel did: the attempt as a receipt would show it."""

    channel: str
    model: str
    upstream_model: str
    ok: bool
    http_status: int | None
    latency_ms: int
    served_model: str | None = None
    error_class: str | None = None
    detail: str | None = None
    mismatch: bool = False  # answered as another model than the mapped one (a dated snapshot still matches)

    @property
    def error_words(self) -> str | None:
        return error_label(self.error_class) if self.error_class else None


def probe_channel(actor_id: int | None, channel_id: int, model_id: str | None = None) -> ProbeResult:
    """Send a one-token request through the channel for a model it maps (the given one, else its first)."""
    channel = get_channel(channel_id)
    info = channel_info(channel)
    model_id = model_id or next(iter(sorted(info.model_map)), None)
    if model_id is None or model_id not in info.model_map:
        raise ProbeRefused(f"{channel.name} maps no model{' ' + repr(model_id) if model_id else ''}; "
                           "map one to test it")
    if not info.api_key:
        raise ProbeRefused(f"{channel.name} has no key, so nothing was sent; set its key to test it")
    model = db.session.get(Model, model_id)
    call = UpstreamCall(channel=info.name, provider=info.provider, base_url=info.base_url, api_key=info.api_key,
                        timeout_s=info.timeout_s, upstream_model=info.model_map[model_id],
                        endpoint="embeddings" if model is not None and model.mode == "embedding" else "chat",
                        body=_probe_body(model), stream=False,
                        default_max_tokens=PROBE_MAX_TOKENS)
    health = channel_health.current_health().get(channel.id, HEALTHY)
    # A channel with a cooldown set is tested like the gateway's probe: success closes its circuit, failure re-trips.
    probe = health.cooldown_until is not None
    started = time.perf_counter()
    try:
        answer = adapter_for(info.provider).send(call)
    except UpstreamError as error:
        result = ProbeResult(info.name, model_id, call.upstream_model, False, error.http_status, ms_since(started),
                             error_class=str(error.error_class), detail=error.detail)
        if error.falls_back:  # as in the gateway: a refused request says nothing about the channel's health
            channel_health.record_failure(channel.id, error.error_class, error.retry_after, was_probe=probe)
    else:
        served = served_model_of(answer.served_model, info.api_key)
        channel_health.record_success(channel.id, probe, health)
        mismatch = note_served_model(channel.id, health, call.upstream_model, served)
        result = ProbeResult(info.name, model_id, call.upstream_model, True, 200, ms_since(started),
                             served_model=served, mismatch=mismatch)
    with write_transaction():
        record_change(actor_id, "channel_tested", f"channel {info.name}", None,
                      {**asdict(result), "at": utcnow().isoformat(timespec="seconds")})
    return result


def _probe_body(model: Model | None) -> dict:
    """The smallest request the model's mode takes."""
    if model is not None and model.mode == "embedding":
        return {"input": PROBE_TEXT}
    return {"messages": [{"role": "user", "content": PROBE_TEXT}], "max_tokens": PROBE_MAX_TOKENS}
