"""The OpenAI adapter against the simulator: answers, usage, streams, error classes, headers, redaction."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from app.providers import openai as adapter
from tests.providers.adapter_calls import bound_to, drain, read_until_failure
from app.providers.base import (
    Completion, ErrorClass, TokenUsage, UpstreamCall, session_for, timeouts,
)
from app.providers.openai_shape import ChunkShaper, conform_completion, conform_embeddings
from app.providers.registry import adapter_for
from app.simulator.wire import count_tokens, reply_words

KEY = "sk-chan-secret-0123456789"
UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
PROMPT = "Where does my request go?"

attempt, failure = bound_to(adapter)


def make_call(sim, channel: str = "up", *, stream: bool = False, endpoint: str = "chat", key: str = KEY,
              timeout_s: float = 5, body: dict | None = None, upstream_model: str = UPSTREAM_MODEL) -> UpstreamCall:
    """A call to one simulated channel, with the client's body as the gateway would pass it."""
    if body is None:
        body = ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]} if endpoint == "chat"
                else {"model": "text-embedding-3-small", "input": "alpha"})
    return UpstreamCall(channel=channel, provider="openai", base_url=sim.url(channel), api_key=key,
                        timeout_s=timeout_s, upstream_model=upstream_model, endpoint=endpoint, body=body, stream=stream)








def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def expected_words(channel: str, n: int = 12) -> list[str]:
    return reply_words(channel, UPSTREAM_MODEL, n)


# --- success -------------------------------------------------------------------------------------

def test_registry_serves_both_openai_providers_with_this_adapter():
    assert adapter_for("openai") is adapter
    assert adapter_for("openai-compatible") is adapter


def test_send_returns_the_completion_with_usage_and_served_model(sim):
    completion = adapter.send(make_call(sim))
    assert isinstance(completion, Completion)
    assert completion.body["object"] == "chat.completion"
    assert completion.body["choices"][0]["message"]["content"] == "".join(expected_words("up"))
    assert completion.usage == TokenUsage(prompt_tokens=count_tokens(PROMPT), completion_tokens=12, cached_tokens=0)
    assert completion.served_model == UPSTREAM_MODEL


def test_send_maps_the_public_model_to_the_upstream_model(sim):
    adapter.send(make_call(sim, body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}],
                                      "temperature": 0.2, "max_tokens": 7}))
    (logged,) = sim.log("up")
    assert logged["path"] == "/up/v1/chat/completions"
    assert logged["model"] == UPSTREAM_MODEL
    assert logged["body"]["temperature"] == 0.2 and logged["body"]["max_tokens"] == 7
    assert logged["stream"] is False
    assert "stream_options" not in logged["body"]


def test_served_model_is_what_the_upstream_reported(sim):
    sim.set_fault("up", served_model="gpt-4o-2024-05-13")
    assert adapter.send(make_call(sim)).served_model == "gpt-4o-2024-05-13"


def test_cached_tokens_come_from_prompt_tokens_details(sim):
    sim.set_fault("up", cached_tokens=3)
    assert adapter.send(make_call(sim)).usage == TokenUsage(count_tokens(PROMPT), 12, 3)


def test_missing_usage_is_none_not_zero(sim):
    sim.set_fault("up", omit_usage=True)
    completion = adapter.send(make_call(sim))
    assert completion.usage is None
    assert completion.body["choices"]


def test_negative_usage_is_a_bad_response(sim):
    sim.set_fault("up", cached_tokens=-5)
    error = failure(make_call(sim))
    assert error.error_class == ErrorClass.BAD_RESPONSE
    assert error.falls_back


def test_embeddings_pass_encoding_format_through_and_report_prompt_usage(sim):
    body = {"model": "text-embedding-3-small", "input": ["alpha", "beta"], "encoding_format": "base64"}
    completion = adapter.send(make_call(sim, endpoint="embeddings", body=body, upstream_model="text-embedding-3-small"))
    (logged,) = sim.log("up")
    assert logged["path"] == "/up/v1/embeddings"
    assert logged["body"]["encoding_format"] == "base64"
    assert [type(d["embedding"]) for d in completion.body["data"]] == [str, str]
    assert completion.usage == TokenUsage(count_tokens("alpha") + count_tokens("beta"), 0, 0)
    assert completion.served_model == "text-embedding-3-small"


# --- headers sent upstream -----------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_gets_the_channel_key_and_waybill_headers_only(sim, stream):
    attempt(make_call(sim, stream=stream))
    (logged,) = sim.log("up")
    headers = logged["headers"]
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["user-agent"].startswith("waybill/")
    names = headers["names"].split(",")
    assert not [n for n in names if n.startswith("x-stainless")]
    assert "x-api-key" not in names and "cookie" not in names


# --- streaming -----------------------------------------------------------------------------------

def test_stream_asks_upstream_for_usage_with_the_mapped_model(sim):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "stream_options": {"include_usage": False, "continuous_usage_stats": False}}
    attempt(make_call(sim, stream=True, body=body))
    (logged,) = sim.log("up")
    assert logged["model"] == UPSTREAM_MODEL
    assert logged["stream"] is True
    assert logged["body"]["stream"] is True
    assert logged["body"]["stream_options"] == {"include_usage": True, "continuous_usage_stats": False}


def test_stream_without_stream_in_the_client_body_still_streams(sim):
    attempt(make_call(sim, stream=True))
    (logged,) = sim.log("up")
    assert logged["body"]["stream"] is True
    assert logged["body"]["stream_options"] == {"include_usage": True}


def test_stream_collects_chunks_usage_text_and_served_model(sim):
    sim.set_fault("up", served_model="gpt-4o-mini-2024-07-18-relay")
    stream = adapter.open_stream(make_call(sim, stream=True))
    try:
        chunks = drain(stream)
    finally:
        stream.close()
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12
    assert stream.delivered_text == expected_words("up")
    assert stream.usage == TokenUsage(count_tokens(PROMPT), 12, 0)
    assert stream.served_model == "gpt-4o-mini-2024-07-18-relay"


def test_open_stream_returns_after_the_first_chunk(sim):
    # The upstream sends its first chunk, then dies: open_stream must succeed, the failure surfaces later.
    sim.set_fault("up", cut_after=0)
    stream = adapter.open_stream(make_call(sim, stream=True))
    assert stream.delivered_text == [] and stream.usage is None
    _, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.CONNECT


def test_stream_cut_mid_way_raises_while_iterating_and_keeps_what_was_delivered(sim):
    sim.set_fault("up", cut_after=3)
    stream = adapter.open_stream(make_call(sim, stream=True))
    received, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.CONNECT
    assert error.falls_back
    assert len(received) == 4
    assert stream.delivered_text == expected_words("up", 3)
    assert stream.usage is None


def test_stream_without_usage_leaves_usage_none_and_text_complete(sim):
    sim.set_fault("up", omit_usage=True)
    stream = adapter.open_stream(make_call(sim, stream=True))
    drain(stream)
    stream.close()
    assert stream.usage is None
    assert stream.delivered_text == expected_words("up")


def test_stream_that_stalls_past_the_timeout_is_a_timeout(sim):
    sim.set_fault("up", chunk_delay_ms=1500, reply_tokens=1)
    stream = adapter.open_stream(make_call(sim, stream=True, timeout_s=0.5))
    _, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.TIMEOUT, error.detail


# --- error classes -------------------------------------------------------------------------------

CLASSES = [
    (500, ErrorClass.UPSTREAM_5XX, True), (502, ErrorClass.UPSTREAM_5XX, True), (503, ErrorClass.UPSTREAM_5XX, True),
    (429, ErrorClass.RATE_LIMITED, True), (401, ErrorClass.KEY_REJECTED, True), (403, ErrorClass.KEY_REJECTED, True),
    (404, ErrorClass.MODEL_MISMATCH, True), (400, ErrorClass.CLIENT_ERROR, False),
    (413, ErrorClass.CLIENT_ERROR, False), (422, ErrorClass.CLIENT_ERROR, False),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status, error_class, falls_back", CLASSES)
def test_upstream_status_is_classified(sim, status, error_class, falls_back, stream):
    sim.set_fault("up", status=status)
    error = failure(make_call(sim, stream=stream))
    assert (error.error_class, error.http_status, error.falls_back) == (error_class, status, falls_back)
    assert error.detail.startswith(f"{status}: ")
    assert f"simulated {status} from up" in error.detail


def test_embedding_errors_are_classified_too(sim):
    sim.set_fault("up", status=503)
    error = failure(make_call(sim, endpoint="embeddings"))
    assert (error.error_class, error.http_status) == (ErrorClass.UPSTREAM_5XX, 503)


def test_429_retry_after_is_parsed(sim):
    sim.set_fault("up", status=429, retry_after=7)
    assert failure(make_call(sim)).retry_after == 7.0
    sim.set_fault("up", status=429, retry_after=12)
    assert failure(make_call(sim, stream=True)).retry_after == 12.0


def test_429_without_retry_after_has_none(sim):
    sim.set_fault("up", status=429)
    assert failure(make_call(sim)).retry_after is None


def test_429_retry_after_as_an_http_date_is_parsed(sim):
    # RFC 9110 allows Retry-After as an HTTP-date as well as delay-seconds.
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    sim.set_fault("up", status=429, retry_after=format_datetime(when, usegmt=True))
    error = failure(make_call(sim))
    assert error.error_class == ErrorClass.RATE_LIMITED
    assert error.retry_after is not None and 60 <= error.retry_after <= 121


def test_client_error_carries_the_upstream_message_for_the_client(sim):
    sim.set_fault("up", status=422)
    error = failure(make_call(sim))
    assert error.client_message == "simulated 422 from up"


def test_bad_body_is_a_bad_response(sim):
    sim.set_fault("up", bad_body=True)
    error = failure(make_call(sim))
    assert error.error_class == ErrorClass.BAD_RESPONSE
    assert error.falls_back
    error = failure(make_call(sim, endpoint="embeddings"))
    assert error.error_class == ErrorClass.BAD_RESPONSE


def test_stream_answered_with_a_body_that_is_not_sse_is_a_bad_response(sim):
    sim.set_fault("up", bad_body=True)
    error = failure(make_call(sim, stream=True))
    assert error.error_class == ErrorClass.BAD_RESPONSE, error.detail


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_dropped_connection_is_a_connect_error(sim, stream):
    sim.set_fault("up", drop=True)
    error = failure(make_call(sim, stream=stream))
    assert error.error_class == ErrorClass.CONNECT
    assert error.http_status is None
    assert error.falls_back


def test_refused_connection_is_a_connect_error(sim):
    call = make_call(sim)
    port = free_port()
    call = UpstreamCall(**{**call.__dict__, "channel": "nowhere", "base_url": f"http://127.0.0.1:{port}/v1"})
    error = failure(call)
    assert error.error_class == ErrorClass.CONNECT


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_slow_upstream_is_a_timeout(sim, stream):
    sim.set_fault("up", latency_ms=2000)
    error = failure(make_call(sim, stream=stream, timeout_s=0.5))
    assert error.error_class == ErrorClass.TIMEOUT
    assert "0.5s" in error.detail
    assert error.falls_back


def test_the_channel_heals_after_a_fault_with_times(sim):
    sim.set_fault("up", status=503, times=1)
    assert failure(make_call(sim)).error_class == ErrorClass.UPSTREAM_5XX
    assert adapter.send(make_call(sim)).usage.completion_tokens == 12


def test_timeouts_cap_the_connect_timeout_at_the_channel_timeout(sim):
    assert timeouts(make_call(sim, timeout_s=0.5)) == (0.5, 0.5)
    assert timeouts(make_call(sim, timeout_s=60)) == (5.0, 60)


def test_sessions_are_pooled_per_channel_and_base_url():
    first = session_for("a", "http://127.0.0.1:1/v1")
    assert session_for("a", "http://127.0.0.1:1/v1") is first
    assert session_for("b", "http://127.0.0.1:1/v1") is not first
    assert first.trust_env is False


# --- keys never leak through error text ----------------------------------------------------------
# The simulator's error message names the channel from the URL path, so a channel path carrying a
# secret makes the upstream echo that secret back, as real upstreams sometimes do.

LEAKS = [
    ("the channel key", "relay-key-7f3a9c1e5b2d", "relay-key-7f3a9c1e5b2d"),
    ("sk- key", "sk-proj-AbC123def456GhI", "AbC123def456GhI"),
    ("AIza key", "AIzaSyD-0123456789abcdefXYZ", "0123456789abcdefXYZ"),
    ("Bearer token", "Bearer eyJhbGciOi.payload", "eyJhbGciOi.payload"),
    ("key= parameter", "q&key=zzTopSecret42", "zzTopSecret42"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("label, echoed, secret", LEAKS, ids=[leak[0] for leak in LEAKS])
def test_upstream_500_text_with_a_secret_is_redacted(sim, label, echoed, secret, stream):
    channel = f"echo {echoed}"
    sim.set_fault(channel, status=500)
    error = failure(make_call(sim, channel, stream=stream, key="relay-key-7f3a9c1e5b2d"))
    assert error.error_class == ErrorClass.UPSTREAM_5XX
    assert secret not in error.detail
    assert secret not in str(error)
    assert "[redacted]" in error.detail


@pytest.mark.parametrize("label, echoed, secret", LEAKS, ids=[leak[0] for leak in LEAKS])
def test_client_error_message_passed_on_is_redacted(sim, label, echoed, secret):
    channel = f"echo {echoed}"
    sim.set_fault(channel, status=400)
    error = failure(make_call(sim, channel, key="relay-key-7f3a9c1e5b2d"))
    assert error.error_class == ErrorClass.CLIENT_ERROR
    assert secret not in error.client_message
    assert secret not in error.detail


def test_a_long_upstream_message_does_not_leak_part_of_the_key(sim):
    # Cutting the message before redacting it would leave a key prefix that no longer matches the key.
    key = "relay-key-0123456789abcdefghijklmnopqrstuv"
    channel = "x" * 250 + key
    sim.set_fault(channel, status=500)
    error = failure(make_call(sim, channel, key=key))
    assert key[:12] not in error.detail, error.detail[-60:]


# --- answers shaped to OpenAI's schema, whatever a relay left out ----------------------------------

def test_a_sparse_completion_gains_every_required_field():
    body = conform_completion({"choices": [{"message": {"content": [{"type": "text", "text": "Hi "},
                                                                    {"type": "text", "text": "there"}],
                                                        "tool_calls": None},
                                            "finish_reason": "eos"}],
                               "usage": {"prompt_tokens": 4, "completion_tokens": 2},
                               "system_fingerprint": None, "service_tier": "on_demand"}, "up-model")
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int) and body["model"] == "up-model"
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Hi there", "refusal": None}}]
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert "system_fingerprint" not in body and "service_tier" not in body


def test_a_refusal_given_as_a_content_part_becomes_the_refusal_field():
    body = conform_completion({"choices": [{"message": {"content": [{"type": "refusal", "refusal": "No."}]},
                                            "finish_reason": "stop"}]}, "m")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": None, "refusal": "No."}


def test_chunks_of_one_stream_share_the_id_and_created_they_were_missing():
    shape = ChunkShaper("up-model")
    first = shape({"choices": [{"delta": {"content": [{"type": "text", "text": "a"}]}}]})
    last = shape({"choices": [{"delta": {}, "finish_reason": "end_turn"}], "usage": None})
    assert (first["id"], first["created"]) == (last["id"], last["created"])
    assert first["object"] == last["object"] == "chat.completion.chunk"
    assert first["choices"] == [{"index": 0, "delta": {"content": "a", "refusal": None}, "logprobs": None,
                                 "finish_reason": None}]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["usage"] is None, "a null usage is how OpenAI streams say 'not yet'"


def test_sparse_embeddings_gain_object_index_and_total_tokens():
    body = conform_embeddings({"data": [{"embedding": [0.5]}, {"embedding": "AAAAPw=="}],
                               "usage": {"prompt_tokens": 3}}, "embedder")
    assert body == {"object": "list", "model": "embedder", "usage": {"prompt_tokens": 3, "total_tokens": 3},
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.5]},
                             {"object": "embedding", "index": 1, "embedding": "AAAAPw=="}]}


def test_the_adapter_serves_a_completion_that_already_conforms(sim):
    body = adapter.send(make_call(sim)).body
    assert conform_completion(body, UPSTREAM_MODEL) == body
    assert body["choices"][0]["message"]["refusal"] is None
