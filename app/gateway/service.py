"""serve(): the one path every model request takes, whichever API the client speaks.

check scope and limits → plan the route → hold → try steps with fallback → settle once →
write the receipt with its attempts and ledger entry.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

from flask import current_app

from app.accounts import limits
from app.billing import holds
from app.billing.models import WALLET_OF_LANE, Lane
from app.billing.pricing import Price, Usage, charge_micros, format_usd
from app.billing.wallets import wallet_ids, wallets_of
from app.database import utcnow, write_transaction
from app.gateway.catalog import published_model
from app.gateway.answered import is_mismatch, ms_since, note_served_model, served_model_of
from app.gateway.errors import GatewayError, invalid_request
from app.gateway.receipts import others_used_channel
from app.gateway.flight import (
    Attempt, AttemptOutcome, FailureStage, Flight, HoldRef, ReceiptStatus, record_skip, refuse, summary,
    write_attempts, write_receipt,
)
from app.gateway.parsing import DEFAULT_MAX_OUTPUT, ParsedRequest, estimate_tokens, parse_chat, parse_embeddings
from app.gateway.quote import hold_amount, max_completion_tokens
from app.gateway.principal import Principal, check_limits
from app.providers.base import ChunkStream, Completion, TokenUsage, UpstreamCall, UpstreamError
from app.providers.registry import adapter_for
from app.routing import health as channel_health
from app.routing.planner import ModelInfo, SkipReason, Step, plan, route_table
from app.runtime import runtime

# Anthropic's /v1/messages and Gemini's generateContent arrive already translated to a chat body;
# their receipts name the endpoint the client called.
# The research assistant sends chat bodies in-process; its receipts say "assistant".
PARSERS = {"chat": parse_chat, "messages": parse_chat, "gemini": parse_chat, "assistant": parse_chat,
           "embeddings": parse_embeddings}
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
    """Serve one request end to end; raise GatewayError (with the receipt headers) when refused."""
    flight = Flight(principal, endpoint, _model_name(body), bool(isinstance(body, dict) and body.get("stream")))
    try:
        flight.parsed = PARSERS[endpoint](body)
        flight.stream = flight.parsed.stream
        flight.model = published_model(flight.parsed.model, "embedding" if endpoint == "embeddings" else "chat")
        check_limits(principal, flight.model.id)
        _check_capabilities(flight.parsed, flight.model)
    except GatewayError as error:
        raise refuse(flight, error, ReceiptStatus.REJECTED, FailureStage.BEFORE_ROUTING) from None
    try:
        return _walk(flight)
    except GatewayError:
        raise
    except Exception:
        # Safety net: whatever broke, the hold ends and the receipt says so; nothing was delivered.
        current_app.logger.exception("unexpected error serving %s", flight.receipt_id)
        raise _internal_error(flight) from None


def _internal_error(flight: Flight) -> GatewayError:
    message = f"Waybill hit an internal error and charged nothing; receipt {flight.receipt_id}"
    error = GatewayError(500, "internal_error", message)
    try:
        return refuse(flight, error, ReceiptStatus.FAILED, flight.failure_stage)
    except Exception:
        current_app.logger.exception("could not write receipt %s; sweep will resolve its hold", flight.receipt_id)
        error.headers.update(flight.failure_headers())
        return error


def _check_capabilities(parsed: ParsedRequest, model: ModelInfo) -> None:
    """Refuse what the model cannot take before any upstream is tried or any money is held."""
    if parsed.has_images and not model.supports_vision:
        raise invalid_request(f"{model.id} does not accept images (a text-only model)")
    if parsed.has_tools and not model.supports_tools:
        raise invalid_request(f"{model.id} does not support tools")


def _model_name(body: object) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model.replace("\x00", "")[:100] if isinstance(model, str) else ""  # PostgreSQL refuses NUL


def _walk(flight: Flight) -> Served | StreamServed:
    """Try the route's steps in order, then a probe of the soonest cooldown if all else is cooling."""
    now = utcnow()
    steps = plan(flight.model.id, list(flight.principal.lanes), now)
    flight.primary_position = steps[0].position if steps else None
    cooling: list[Step] = []
    for step in steps:
        if step.skip:
            record_skip(flight, step, step.skip)
            if step.skip is SkipReason.COOLING_DOWN:
                cooling.append(step)
            continue
        probe = step.health.probe_due(now)
        if probe and not channel_health.claim_probe(step.channel.id, step.channel.timeout_s):
            record_skip(flight, step, SkipReason.COOLING_DOWN, "another request is probing this channel")
            continue
        result = _try(flight, step, probe)
        if result is not None:
            return result
    if cooling:
        # No total outage from cooldowns: probe the step whose cooldown ends first, one request at a time.
        soonest = min(cooling, key=lambda s: s.health.cooldown_until)
        if channel_health.claim_probe(soonest.channel.id, soonest.channel.timeout_s, before_cooldown_ends=True):
            result = _try(flight, soonest, probe=True)
            if result is not None:
                return result
    raise _unserved(flight, steps)


def _hold_for(flight: Flight, step: Step) -> bool:
    """Hold the worst case on the wallet of the step's lane, moving the hold if the lane changed.

    A key with a spend cap holds the same amount against its cap, in the same transaction.
    """
    wallet = WALLET_OF_LANE[Lane(step.channel.lane)].value
    amount = hold_amount(flight.parsed, flight.model, step.channel.multiplier)
    if flight.hold and flight.hold.wallet == wallet and flight.hold.amount >= amount:
        return True
    wallet_id = wallet_ids(flight.principal.user_id)[wallet]
    old = flight.hold
    try:
        with write_transaction():
            # Rows are locked in one order everywhere, the key's before its wallets, and two wallets in
            # id order, so concurrent requests and crossing fallbacks cannot deadlock.
            if flight.principal.spend_cap is not None:
                limits.reserve_spend(flight.principal.api_key_id, amount - (old.amount if old else 0))
            void_first = old is not None and old.wallet_id < wallet_id
            if void_first:
                holds.void(old.id)
            hold = holds.reserve(wallet_id, amount, memo=f"{flight.receipt_id} {flight.model.id}",
                                 streaming=flight.stream)
            if old is not None and not void_first:
                holds.void(old.id)
            write_receipt(flight, hold_id=hold.id)
    except holds.InsufficientBalance:
        flight.shortfalls[wallet] = max(flight.shortfalls.get(wallet, 0), amount)
        return False
    except limits.SpendCapReached as exc:
        raise refuse(flight, GatewayError(402, "key_spend_cap", f"{exc}; receipt {flight.receipt_id}"),
                     ReceiptStatus.REJECTED, FailureStage.NO_ROUTE) from None
    flight.hold = HoldRef(hold.id, wallet, wallet_id, amount)
    return True


def _call(flight: Flight, step: Step) -> UpstreamCall:
    return UpstreamCall(channel=step.channel.name, provider=step.channel.provider, base_url=step.channel.base_url,
                        api_key=step.channel.api_key, timeout_s=step.channel.timeout_s,
                        upstream_model=step.upstream_model, endpoint=flight.parsed.endpoint,
                        body=flight.parsed.body, stream=flight.parsed.stream,
                        default_max_tokens=flight.model.max_output_tokens or DEFAULT_MAX_OUTPUT)


def _try(flight: Flight, step: Step, probe: bool) -> Served | StreamServed | None:
    """Try one step: None means fall back to the next; a client error ends the request."""
    if not _hold_for(flight, step):
        record_skip(flight, step, SkipReason.INSUFFICIENT_BALANCE,
                    f"the {WALLET_OF_LANE[Lane(step.channel.lane)].value} wallet cannot cover the hold")
        return None
    started = time.perf_counter()
    adapter = adapter_for(step.channel.provider)
    try:
        if flight.parsed.stream:
            upstream = adapter.open_stream(_call(flight, step))
        else:
            upstream = adapter.send(_call(flight, step))
    except UpstreamError as error:
        detail = ("probe: " if probe else "") + error.detail
        flight.attempts.append(Attempt.of(step, AttemptOutcome.ERROR, http_status=error.http_status,
                                          error_class=error.error_class, detail=detail[:500],
                                          latency_ms=ms_since(started)))
        if not error.falls_back:
            raise _client_error(flight, step, error) from None
        flight.failed_step = step
        key_id = flight.principal.api_key_id
        channel_health.record_failure(
            step.channel.id, error.error_class, error.retry_after, was_probe=probe, key_id=key_id,
            others_used=lambda since: others_used_channel(step.channel.name, key_id, since))
        return None
    latency = ms_since(started)
    channel_health.record_success(step.channel.id, probe, step.health)
    if isinstance(upstream, Completion):
        return _served(flight, step, upstream, latency, probe)
    return _streamed(flight, step, upstream, latency, probe)


def _note_served_model(step: Step, served_model: str | None) -> list[str]:
    """The receipt's flags for the model that answered, after noting it in the channel's health."""
    mismatch = note_served_model(step.channel.id, step.health, step.upstream_model, served_model)
    return ["model_mismatch"] if mismatch else []


def _usage_or_estimate(flight: Flight, reported: TokenUsage | None, delivered_text: str) -> tuple[Usage, str]:
    """The usage to bill: the upstream's, else an estimate from the delivered text ("estimated")."""
    if reported is not None:
        return Usage(reported.prompt_tokens, reported.completion_tokens, reported.cached_tokens), "reported"
    completion = estimate_tokens(delivered_text) if delivered_text else 0
    return Usage(estimate_tokens(flight.parsed.prompt_text), completion), "estimated"


def _within_bounds(flight: Flight, usage: Usage, flags: list[str]) -> Usage:
    """Bill no more completion tokens than the client allowed; beyond that the usage is capped and flagged."""
    most = max_completion_tokens(flight.parsed, flight.model)
    if usage.completion_tokens <= most:
        return usage
    flags.append("usage_capped")
    return Usage(usage.prompt_tokens, most, usage.cached_tokens)


def choices_text(body: dict, part: str = "message") -> str:
    """The text of an answer's choices ("message"), or of a stream chunk's ("delta"); content parts are joined."""
    texts = []
    for choice in body.get("choices") or []:
        content = (choice.get(part) or {}).get("content") if isinstance(choice, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "".join(texts)


def _served(flight: Flight, step: Step, completion: Completion, latency: int, probe: bool) -> Served:
    served_model = served_model_of(completion.served_model, step.channel.api_key)
    flags = _note_served_model(step, served_model)
    text = choices_text(completion.body) if flight.parsed.endpoint == "chat" else ""
    usage, source = _usage_or_estimate(flight, completion.usage, text)
    if flight.parsed.endpoint == "embeddings" and completion.usage is None:
        # OpenAI's schema requires usage on embeddings; without the upstream's, say what was billed.
        completion.body["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
    flight.attempts.append(Attempt.of(step, AttemptOutcome.OK, served_model=served_model,
                                      latency_ms=latency, detail="probe" if probe else None, http_status=200))
    upstream_model = _settle(flight, step, usage, source, flags, ReceiptStatus.SUCCEEDED, None, ttfb_ms=latency,
                             served_model=served_model)
    return Served(body=completion.body, headers=flight.served_headers(step, upstream_model),
                  receipt_id=flight.receipt_id)


def _streamed(flight: Flight, step: Step, upstream: ChunkStream, ttfb: int, probe: bool) -> StreamServed:
    served_model = served_model_of(upstream.served_model, step.channel.api_key)
    attempt = Attempt.of(step, AttemptOutcome.OK, served_model=served_model, latency_ms=ttfb,
                         detail="probe" if probe else None, http_status=200)
    flight.attempts.append(attempt)
    headers = flight.served_headers(step, served_model or step.upstream_model)
    return StreamServed(headers=headers, events=_relay(flight, step, attempt, upstream, ttfb),
                        receipt_id=flight.receipt_id)


def _relay(flight: Flight, step: Step, attempt: Attempt, upstream: ChunkStream, ttfb: int) -> Iterator[dict]:
    """Pass chunks on and settle exactly once, before the client sees the stream's end."""
    include_usage = flight.parsed.include_usage
    settled = False
    chunks = 0
    heartbeat = _Heartbeat(flight.hold.id)

    def finish(status: ReceiptStatus, stage: FailureStage | None, error: str | None = None) -> None:
        nonlocal settled
        settled = True
        upstream.close()
        attempt.served_model = served_model_of(upstream.served_model, step.channel.api_key)
        flags = _note_served_model(step, attempt.served_model)
        usage, source = _usage_or_estimate(flight, upstream.usage, "".join(upstream.delivered_text))
        _settle(flight, step, usage, source, flags, status, stage, ttfb_ms=ttfb,
                served_model=attempt.served_model, error=error)

    def delivered_so_far() -> int:
        usage, _source = _usage_or_estimate(flight, upstream.usage, "".join(upstream.delivered_text))
        usage = _within_bounds(flight, usage, [])
        return charge_micros(usage, _applied_price(flight, step, attempt.served_model, usage)[1],
                             step.channel.multiplier)

    ending = None
    try:
        for chunk in upstream.chunks:
            heartbeat.beat(delivered_so_far)
            if "usage" in chunk and not include_usage:
                if not chunk.get("choices"):
                    continue  # the usage chunk Waybill asked for on its own account
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
            chunks += 1
            yield chunk
    except UpstreamError as error:
        attempt.outcome, attempt.error_class = AttemptOutcome.ERROR, error.error_class
        attempt.detail = f"cut after {chunks} chunks: {error.detail}"[:500]
        message = (f"{flight.model.id}: {step.channel.name} failed mid-stream after {chunks} chunks "
                   f"({error.error_class}); receipt {flight.receipt_id}")
        finish(ReceiptStatus.INTERRUPTED, FailureStage.MID_STREAM, message)
        ending = {"error": {"message": message, "type": "api_error", "param": None, "code": "upstream_interrupted"}}
    except GeneratorExit:
        attempt.detail = f"client disconnected after {chunks} chunks"
        finish(ReceiptStatus.INTERRUPTED, FailureStage.CLIENT_DISCONNECTED,
               f"the client disconnected after {chunks} chunks")
        return
    else:
        finish(ReceiptStatus.SUCCEEDED, None)
    finally:
        if not settled:  # anything unexpected: still end the hold, charging what was delivered
            attempt.outcome, attempt.detail = AttemptOutcome.ERROR, f"Waybill failed after {chunks} chunks"
            finish(ReceiptStatus.INTERRUPTED, FailureStage.MID_STREAM,
                   f"Waybill hit an internal error after {chunks} chunks; charged for what was delivered")
    if ending is not None:
        yield ending


class _Heartbeat:
    """Keeps a long stream's hold alive, and records what it has delivered should its worker die."""

    def __init__(self, hold_id: int):
        self.hold_id = hold_id
        self.every_s = current_app.config["WAYBILL_HOLD_TTL_S"] / 3
        self.last = runtime().monotonic()

    def beat(self, delivered: Callable[[], int]) -> None:
        """Once a third of the hold's lifetime has passed since the last beat, renew it with delivered()."""
        if runtime().monotonic() - self.last >= self.every_s:
            holds.keep_alive(self.hold_id, delivered())
            self.last = runtime().monotonic()


def _applied_price(flight: Flight, step: Step, served_model: str | None, usage: Usage) -> tuple[str, Price]:
    """The requested model's price; a substituted model in the catalog is charged at the cheaper of the two."""
    model = flight.model
    if not is_mismatch(step.upstream_model, served_model):
        return model.id, model.price
    substitute = route_table().catalog_price(served_model)
    if substitute is None:
        return model.id, model.price
    multiplier = step.channel.multiplier
    return min((model.id, model.price), substitute, key=lambda p: charge_micros(usage, p[1], multiplier))


def _settle(flight: Flight, step: Step, usage: Usage, source: str, flags: list[str], status: ReceiptStatus,
            stage: FailureStage | None, ttfb_ms: int, served_model: str | None, error: str | None = None) -> str:
    """Charge the hold once and write the final receipt, its attempts and the ledger link together.

    Returns the model that answered, as the receipt names it.
    """
    usage = _within_bounds(flight, usage, flags)
    price_model, price = _applied_price(flight, step, served_model, usage)
    due = charge_micros(usage, price, step.channel.multiplier)
    upstream_model = served_model or step.upstream_model
    key_capped = flight.principal.spend_cap is not None
    with write_transaction():
        # A key's cap bounds the charge too; beyond it the receipt is underpaid, like a short wallet.
        charge = limits.allowed_charge(flight.principal.api_key_id, flight.hold.amount, due) if key_capped else due
        memo = f"{flight.receipt_id} {flight.model.id} via {step.channel.name}"
        settlement = holds.settle(flight.hold.id, charge, memo=memo)
        if settlement.charged < due:
            flags.append("underpaid")
        if key_capped:
            limits.settle_spend(flight.principal.api_key_id, settlement.held, settlement.charged)
        write_receipt(
            flight, status=status, failure_stage=stage, error_message=error, upstream_model=upstream_model,
            fallback_used=flight.fallback_used, route_channel=step.channel.name,
            route_label=step.channel.label, route_lane=step.channel.lane, route_position=step.position,
            settlement=step.channel.lane, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens, usage_source=source,
            input_per_mtok=price.input_per_mtok, output_per_mtok=price.output_per_mtok,
            cached_input_per_mtok=price.cached_input_per_mtok, multiplier=_ratio_text(step), price_model=price_model,
            charge=settlement.charged, latency_ms=flight.elapsed_ms(), ttfb_ms=ttfb_ms, flags=flags,
            ledger_entry_id=settlement.entry.id if settlement.entry else None)
        write_attempts(flight)
    return upstream_model


def _ratio_text(step: Step) -> str:
    multiplier = step.channel.multiplier
    if multiplier.denominator == 1:
        return str(multiplier.numerator)
    return f"{multiplier.numerator}/{multiplier.denominator}"


def _client_error(flight: Flight, step: Step, error: UpstreamError) -> GatewayError:
    message = (f"{flight.model.id}: {step.channel.name} rejected the request ({error.http_status}): "
               f"{error.client_message or error.detail}; receipt {flight.receipt_id}")
    return refuse(flight, GatewayError(400, "invalid_request", message), ReceiptStatus.FAILED, flight.failure_stage)


def _unserved(flight: Flight, steps: list[Step]) -> GatewayError:
    """No step served the request: 402 if a step was skipped for money, 502 if an upstream failed, else 503."""
    model_id = flight.model.id
    if flight.shortfalls:
        # Money first: topping up is what would let this request through, whatever else failed.
        wallets = wallets_of(flight.principal.user_id)
        needs = ", ".join(f"{kind} needs ${format_usd(amount)} and has ${format_usd(wallets[kind].available)} available"
                          for kind, amount in sorted(flight.shortfalls.items()))
        message = (f"{model_id}: no allowed wallet can cover the hold ({needs}); a lower max_tokens lowers "
                   f"the hold; attempts: {summary(flight)}; receipt {flight.receipt_id}")
        status = ReceiptStatus.FAILED if flight.failed_step else ReceiptStatus.REJECTED
        return refuse(flight, GatewayError(402, "insufficient_balance", message), status,
                      flight.failure_stage if flight.failed_step else FailureStage.NO_ROUTE)
    if flight.failed_step is not None:
        message = f"{model_id}: {summary(flight)}; receipt {flight.receipt_id}"
        error = GatewayError(502, "all_routes_failed", message, retry_after=_seconds_until_a_cooldown_ends(steps))
        return refuse(flight, error, ReceiptStatus.FAILED, flight.failure_stage)
    message = f"{model_id}: no usable route ({summary(flight)}); receipt {flight.receipt_id}"
    error = GatewayError(503, "no_route_available", message, retry_after=_seconds_until_a_cooldown_ends(steps))
    return refuse(flight, error, ReceiptStatus.FAILED, FailureStage.NO_ROUTE)


def _seconds_until_a_cooldown_ends(steps: list[Step]) -> int | None:
    """Seconds until the soonest cooldown on this route ends, read fresh: failures just now count."""
    now = utcnow()
    health = channel_health.current_health()
    ends = [h.cooldown_until for h in (health.get(s.channel.id) for s in steps) if h is not None and h.cooling(now)]
    return max(1, int((min(ends) - now).total_seconds()) + 1) if ends else None


def record_rejection(principal: Principal, endpoint: str, error: GatewayError) -> GatewayError:
    """Write the receipt of a request refused before its body could be read (e.g. too large)."""
    return refuse(Flight(principal, endpoint, "", False), error, ReceiptStatus.REJECTED, FailureStage.BEFORE_ROUTING)
