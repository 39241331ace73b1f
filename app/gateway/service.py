"""serve(): the one path every request takes, for /v1, the assistant and the admin test button.

authenticate → check scope → plan the route → hold → try steps with fallback → settle once →
write the receipt with its attempts and ledger entry.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import update

from app.accounts.models import ApiKey
from app.billing import holds
from app.billing.models import WALLET_OF_LANE, Lane
from app.billing.pricing import Usage, charge_micros, format_usd
from app.billing.wallets import wallet_ids, wallets_of
from app.database import utcnow, write_transaction
from app.extensions import db
from app.gateway.errors import GatewayError, invalid_request
from app.gateway.flight import (
    Flight, HoldRef, attempt_record, finish, record_skip, summary, with_receipt, write_attempts, write_receipt,
)
from app.gateway.parsing import DEFAULT_MAX_OUTPUT, ParsedRequest, estimate_tokens, parse_chat, parse_embeddings
from app.gateway.principal import Principal, check_limits
from app.providers.base import ChunkStream, Completion, TokenUsage, UpstreamCall, UpstreamError
from app.providers.registry import adapter_for
from app.routing import health as channel_health
from app.routing.planner import ModelInfo, Step, plan, route_table

# Anthropic's /v1/messages and Gemini's generateContent arrive already translated to a chat body;
# their receipts name the endpoint the client called.
PARSERS = {"chat": parse_chat, "messages": parse_chat, "gemini": parse_chat, "embeddings": parse_embeddings}
DATED_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3})$")


@dataclass
class Served:
    """A whole JSON answer with its Waybill headers."""

    body: dict
    headers: dict[str, str]
    receipt_id: str


@dataclass
class StreamServed:
    """A streamed answer: OpenAI chunk dicts, ending with an {"error": …} dict if cut mid-way.

    The receipt is final before the iterator ends, so the wire's end marker can follow it.
    """

    headers: dict[str, str]
    events: Iterator[dict]
    receipt_id: str


def serve(principal: Principal, endpoint: str, body: object) -> Served | StreamServed:
    """Serve one request end to end; raise GatewayError (with the receipt header) when refused."""
    flight = Flight(principal, endpoint, _model_name(body), bool(isinstance(body, dict) and body.get("stream")))
    try:
        flight.parsed = PARSERS[endpoint](body)
        flight.stream = flight.parsed.stream
        flight.model = route_table().models.get(flight.parsed.model)
        if flight.model is None or flight.model.mode != ("embedding" if endpoint == "embeddings" else "chat"):
            raise GatewayError(404, "model_not_found", f"unknown model {flight.parsed.model!r}")
        check_limits(principal, flight.model.id)
        _check_capabilities(flight.parsed, flight.model)
    except GatewayError as error:
        finish(flight, status="rejected", stage="before_routing", error=error.message)
        raise with_receipt(error, flight) from None
    return _walk(flight)


def _check_capabilities(parsed: ParsedRequest, model: ModelInfo) -> None:
    """Refuse what the model cannot take before any upstream is tried or any money is held."""
    if parsed.has_images and not model.supports_vision:
        raise invalid_request(f"{model.id} does not accept images (a text-only model)")
    if parsed.has_tools and not model.supports_tools:
        raise invalid_request(f"{model.id} does not support tools")


def _model_name(body: object) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model[:100] if isinstance(model, str) else ""


def _walk(flight: Flight) -> Served | StreamServed:
    """Try the route's steps in order, then a probe of the soonest cooldown if all else is cooling."""
    now = utcnow()
    steps = plan(flight.model.id, list(flight.principal.lanes), now)
    cooling: list[Step] = []
    last_tried: Step | None = None
    for step in steps:
        if step.skip:
            record_skip(flight, step, step.skip)
            if step.skip == "cooling_down":
                cooling.append(step)
            continue
        probe = False
        if step.health.probe_due(now):
            if not channel_health.claim_probe(step.channel.id, step.channel.timeout_s):
                record_skip(flight, step, "cooling_down", "another request is probing this channel")
                cooling.append(step)
                continue
            probe = True
        result = _try(flight, step, probe)
        if result is not None:
            return result
        if flight.attempts[-1]["outcome"] == "error":
            last_tried = step
    if cooling:
        soonest = min(cooling, key=lambda s: s.health.cooldown_until or now)
        result = _try(flight, soonest, probe=True, forced=True)
        if result is not None:
            return result
        if flight.attempts[-1]["outcome"] == "error":
            last_tried = soonest
    raise _no_route(flight, steps, last_tried)


def _hold_amount(flight: Flight, step: Step) -> int:
    """The worst case: the estimated prompt plus max_tokens (or the model's max output)."""
    parsed, model = flight.parsed, flight.model
    output = 0
    if parsed.endpoint != "embeddings":
        output = parsed.max_tokens or model.max_output_tokens or DEFAULT_MAX_OUTPUT
    return charge_micros(Usage(estimate_tokens(parsed.prompt_text), output), model.price, step.channel.multiplier)


def _hold_for(flight: Flight, step: Step) -> bool:
    """Hold the worst case on the wallet of the step's lane, moving the hold if the lane changed."""
    wallet = WALLET_OF_LANE[Lane(step.channel.lane)].value
    amount = _hold_amount(flight, step)
    if flight.hold and flight.hold.wallet == wallet and flight.hold.amount >= amount:
        return True
    wallet_id = wallet_ids(flight.principal.user_id)[wallet]
    old = flight.hold
    try:
        with write_transaction():
            # Two wallets in one transaction: lock them in id order so crossing fallbacks cannot deadlock.
            void_first = old is not None and old.wallet_id < wallet_id
            if void_first:
                holds.void(old.id)
            hold = holds.reserve(wallet_id, amount, memo=f"{flight.receipt_id} {flight.model.id}",
                                 upstream_started=True)
            if old is not None and not void_first:
                holds.void(old.id)
            write_receipt(flight, hold_id=hold.id)
    except holds.InsufficientBalance:
        flight.shortfalls[wallet] = max(flight.shortfalls.get(wallet, 0), amount)
        return False
    flight.hold = HoldRef(hold.id, wallet, wallet_id, amount)
    return True


def _call(flight: Flight, step: Step) -> UpstreamCall:
    return UpstreamCall(channel=step.channel.name, provider=step.channel.provider, base_url=step.channel.base_url,
                        api_key=step.channel.api_key, timeout_s=step.channel.timeout_s,
                        upstream_model=step.upstream_model, endpoint=flight.parsed.endpoint,
                        body=flight.parsed.body, stream=flight.parsed.stream,
                        default_max_tokens=flight.model.max_output_tokens or DEFAULT_MAX_OUTPUT)


def _try(flight: Flight, step: Step, probe: bool, forced: bool = False) -> Served | StreamServed | None:
    """Try one step: None means fall back to the next; a client error ends the request."""
    if not _hold_for(flight, step):
        record_skip(flight, step, "insufficient_balance", f"the {WALLET_OF_LANE[Lane(step.channel.lane)].value} "
                                                    "wallet cannot cover the hold")
        return None
    flight.tried += 1
    started = time.perf_counter()
    adapter = adapter_for(step.channel.provider)
    try:
        if flight.parsed.stream:
            upstream = adapter.open_stream(_call(flight, step))
        else:
            upstream = adapter.send(_call(flight, step))
    except UpstreamError as error:
        latency = int((time.perf_counter() - started) * 1000)
        detail = ("probe: " if probe else "") + error.detail
        flight.attempts.append(attempt_record(step, "error", http_status=error.http_status,
                                        error_class=error.error_class, detail=detail[:500], latency_ms=latency))
        if not error.falls_back:
            raise _client_error(flight, step, error) from None
        channel_health.record_failure(step.channel.id, error.error_class, error.retry_after, was_probe=probe)
        return None
    latency = int((time.perf_counter() - started) * 1000)
    channel_health.record_success(step.channel.id, probe, step.health)
    if isinstance(upstream, Completion):
        return _served(flight, step, upstream, latency, probe)
    return _streamed(flight, step, upstream, latency, probe)


def _mismatch(step: Step, served_model: str | None) -> bool:
    """The upstream answered with another model than mapped; a dated snapshot still matches."""
    if not served_model or served_model == step.upstream_model:
        return False
    return DATED_SUFFIX.sub("", served_model) != DATED_SUFFIX.sub("", step.upstream_model or "")


def _note_served_model(step: Step, served_model: str | None) -> list[str]:
    mismatch = _mismatch(step, served_model)
    if mismatch != bool(step.health.observed_mismatch):
        channel_health.record_observed_mismatch(step.channel.id, served_model if mismatch else None)
    return ["model_mismatch"] if mismatch else []


def _usage_or_estimate(flight: Flight, reported: TokenUsage | None, delivered_text: str) -> tuple[Usage, str]:
    if reported is not None:
        return Usage(reported.prompt_tokens, reported.completion_tokens, reported.cached_tokens), "reported"
    completion = estimate_tokens(delivered_text) if delivered_text else 0
    return Usage(estimate_tokens(flight.parsed.prompt_text), completion), "estimated"


def _served(flight: Flight, step: Step, completion: Completion, latency: int, probe: bool) -> Served:
    flags = _note_served_model(step, completion.served_model)
    text = "".join((c.get("message") or {}).get("content") or "" for c in completion.body.get("choices") or []
                   if isinstance(c, dict)) if flight.parsed.endpoint == "chat" else ""
    usage, source = _usage_or_estimate(flight, completion.usage, text)
    flight.attempts.append(attempt_record(step, "ok", served_model=completion.served_model, latency_ms=latency,
                                    detail="probe" if probe else None, http_status=200))
    _settle(flight, step, usage, source, flags, status="succeeded", stage=None, ttfb_ms=latency,
            served_model=completion.served_model)
    return Served(body=completion.body, headers=flight.headers(step), receipt_id=flight.receipt_id)


def _streamed(flight: Flight, step: Step, upstream: ChunkStream, ttfb: int, probe: bool) -> StreamServed:
    flight.attempts.append(attempt_record(step, "ok", served_model=upstream.served_model, latency_ms=ttfb,
                                    detail="probe" if probe else None, http_status=200))
    headers = flight.headers(step)
    return StreamServed(headers=headers, events=_relay(flight, step, upstream, ttfb), receipt_id=flight.receipt_id)


def _relay(flight: Flight, step: Step, upstream: ChunkStream, ttfb: int) -> Iterator[dict]:
    """Pass chunks on and settle exactly once, before the client sees the stream's end."""
    include_usage = flight.parsed.include_usage
    settled = False

    def finish(status: str, stage: str | None) -> None:
        nonlocal settled
        settled = True
        upstream.close()
        flags = _note_served_model(step, upstream.served_model)
        usage, source = _usage_or_estimate(flight, upstream.usage, "".join(upstream.delivered_text))
        flight.attempts[-1]["served_model"] = upstream.served_model
        _settle(flight, step, usage, source, flags, status=status, stage=stage, ttfb_ms=ttfb,
                served_model=upstream.served_model)

    ending = None
    try:
        for chunk in upstream.chunks:
            if "usage" in chunk and not include_usage:
                if not chunk.get("choices"):
                    continue  # the usage chunk Waybill asked for on its own account
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            yield chunk
    except UpstreamError as error:
        flight.attempts[-1].update(detail=f"cut mid-stream: {error.detail}"[:500], error_class=error.error_class)
        finish("interrupted", "mid_stream")
        message = (f"{flight.model.id}: {step.channel.name} failed mid-stream ({error.error_class}); "
                   f"receipt {flight.receipt_id}")
        ending = {"error": {"message": message, "type": "api_error", "code": "upstream_interrupted"}}
    except GeneratorExit:
        finish("interrupted", "client_disconnected")
        return
    else:
        finish("succeeded", None)
    finally:
        if not settled:  # anything unexpected: still end the hold, charging what was delivered
            finish("interrupted", "mid_stream")
    if ending is not None:
        yield ending


def _settle(flight: Flight, step: Step, usage: Usage, source: str, flags: list[str], status: str,
            stage: str | None, ttfb_ms: int, served_model: str | None) -> None:
    """Charge the hold once and write the final receipt, its attempts and the ledger link together."""
    model = flight.model
    charge = charge_micros(usage, model.price, step.channel.multiplier)
    with write_transaction():
        memo = f"{flight.receipt_id} {model.id} via {step.channel.name}"
        settlement = holds.settle(flight.hold.id, charge, memo=memo)
        if settlement.underpaid:
            flags.append("underpaid")
        # Only keys with a spend cap count their spending: it saves a write on every other request.
        if flight.principal.spend_cap is not None and settlement.charged:
            db.session.execute(update(ApiKey).where(ApiKey.id == flight.principal.api_key_id)
                               .values(spent=ApiKey.spent + settlement.charged)
                               .execution_options(synchronize_session=False))
        write_receipt(
            flight, status=status, failure_stage=stage, upstream_model=step.upstream_model,
            fallback_used=step.position != _first_position(flight), route_channel=step.channel.name,
            route_label=step.channel.label, route_lane=step.channel.lane, route_position=step.position,
            settlement=step.channel.lane, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens, usage_source=source,
            input_per_mtok=model.price.input_per_mtok, output_per_mtok=model.price.output_per_mtok,
            cached_input_per_mtok=model.price.cached_input_per_mtok, multiplier=_ratio_text(step),
            charge=settlement.charged, latency_ms=flight.elapsed_ms(), ttfb_ms=ttfb_ms, flags=flags,
            ledger_entry_id=settlement.entry.id if settlement.entry else None)
        write_attempts(flight)


def _first_position(flight: Flight) -> int:
    return flight.attempts[0]["position"] if flight.attempts else 1


def _ratio_text(step: Step) -> str:
    multiplier = step.channel.multiplier
    if multiplier.denominator == 1:
        return str(multiplier.numerator)
    return f"{multiplier.numerator}/{multiplier.denominator}"


def _client_error(flight: Flight, step: Step, error: UpstreamError) -> GatewayError:
    stage = "primary" if flight.tried == 1 else "after_fallback"
    message = (f"{flight.model.id}: {step.channel.name} rejected the request ({error.http_status}): "
               f"{error.client_message or error.detail}; receipt {flight.receipt_id}")
    finish(flight, status="failed", stage=stage, error=message)
    return with_receipt(GatewayError(400, "invalid_request", message), flight, step)


def _no_route(flight: Flight, steps: list[Step], last_tried: Step | None) -> GatewayError:
    """The request could not be served: 502 if something was tried, else 402 or 503."""
    model_id = flight.model.id
    if flight.tried and any(a["outcome"] == "error" for a in flight.attempts):
        message = f"{model_id}: {summary(flight)}; receipt {flight.receipt_id}"
        stage = "primary" if flight.tried == 1 and steps and last_tried is steps[0] else "after_fallback"
        finish(flight, status="failed", stage=stage, error=message)
        return with_receipt(GatewayError(502, "all_routes_failed", message), flight, last_tried)
    if flight.shortfalls:
        wallets = wallets_of(flight.principal.user_id)
        needs = ", ".join(f"{kind} needs ${format_usd(amount)} and has ${format_usd(wallets[kind].available)} available"
                          for kind, amount in sorted(flight.shortfalls.items()))
        message = (f"{model_id}: no allowed wallet can cover the hold ({needs}); a lower max_tokens lowers "
                   f"the hold; receipt {flight.receipt_id}")
        finish(flight, status="rejected", stage="no_route", error=message)
        return with_receipt(GatewayError(402, "insufficient_balance", message), flight)
    message = f"{model_id}: no usable route ({summary(flight)}); receipt {flight.receipt_id}"
    retry_after = _seconds_until_cooldown_ends(steps)
    finish(flight, status="failed", stage="no_route", error=message)
    return with_receipt(GatewayError(503, "no_route_available", message, retry_after=retry_after), flight)


def _seconds_until_cooldown_ends(steps: list[Step]) -> int | None:
    now = utcnow()
    ends = [s.health.cooldown_until for s in steps if s.health.cooling(now)]
    return max(1, int((min(ends) - now).total_seconds()) + 1) if ends else None


def record_rejection(principal: Principal, endpoint: str, error: GatewayError) -> GatewayError:
    """Write the receipt of a request refused before its body could be read (e.g. too large)."""
    flight = Flight(principal, endpoint, "", False)
    finish(flight, status="rejected", stage="before_routing", error=error.message)
    return with_receipt(error, flight)
