"""The Gemini adapter against the simulator: translation on the wire, usage, streams, error classes, the key."""
from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server

from app.providers import gemini as adapter
from tests.providers.adapter_calls import bound_to, drain, read_until_failure
from app.providers.base import Completion, ErrorClass, TokenUsage, UpstreamCall, UpstreamError
from app.providers.registry import adapter_for
from app.simulator.wire import count_tokens, reply_words

KEY = "AIzaSyChannelSecret0123456789"
UPSTREAM_MODEL = "gemini-2.0-flash"
PROMPT = "Where does my request go?"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}

attempt, failure = bound_to(adapter)


def make_call(sim, channel: str = "up", *, stream: bool = False, endpoint: str = "chat", key: str = KEY,
              timeout_s: float = 5, body: dict | None = None, upstream_model: str = UPSTREAM_MODEL) -> UpstreamCall:
    """A call to one simulated channel; the base URL is the API root, as the google-genai SDK takes it."""
    if body is None:
        body = {"model": "gemini-flash", "messages": [{"role": "user", "content": PROMPT}]}
    return UpstreamCall(channel=channel, provider="gemini", base_url=f"{sim.root}/{channel}", api_key=key,
                        timeout_s=timeout_s, upstream_model=upstream_model, endpoint=endpoint, body=body,
                        stream=stream)






def expected_words(channel: str = "up", n: int = 12) -> list[str]:
    return reply_words(channel, UPSTREAM_MODEL, n)


def weather_body(*extra: dict) -> dict:
    return {"model": "gemini-flash", "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}, *extra]}


# --- success -------------------------------------------------------------------------------------

def test_registry_serves_gemini_with_this_adapter():
    assert adapter_for("gemini") is adapter


def test_send_returns_an_openai_completion_with_usage_and_served_model(sim):
    completion = adapter.send(make_call(sim))
    assert isinstance(completion, Completion)
    assert completion.body["object"] == "chat.completion"
    choice = completion.body["choices"][0]
    assert choice["message"]["content"] == "".join(expected_words())
    assert choice["finish_reason"] == "stop"
    assert completion.usage == TokenUsage(prompt_tokens=count_tokens(PROMPT), completion_tokens=12, cached_tokens=0)
    assert completion.body["usage"]["total_tokens"] == count_tokens(PROMPT) + 12
    assert completion.served_model == UPSTREAM_MODEL == completion.body["model"]


def test_the_request_is_translated_and_sent_to_the_upstream_model(sim):
    body = {"model": "gemini-flash", "max_tokens": 5, "temperature": 0.3,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]}
    completion = adapter.send(make_call(sim, body=body, upstream_model="models/gemini-2.0-flash"))
    (logged,) = sim.log("up")
    assert logged["path"] == f"/up/v1beta/models/{UPSTREAM_MODEL}:generateContent"
    assert logged["model"] == UPSTREAM_MODEL and logged["stream"] is False
    assert logged["body"] == {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                              "systemInstruction": {"parts": [{"text": "Be brief."}]},
                              "generationConfig": {"temperature": 0.3, "maxOutputTokens": 5}}
    assert completion.body["choices"][0]["finish_reason"] == "length"
    assert completion.usage.completion_tokens == 5


def test_served_model_is_the_reported_model_version(sim):
    sim.set_fault("up", served_model="gemini-1.5-flash-002")
    completion = adapter.send(make_call(sim))
    assert completion.served_model == "gemini-1.5-flash-002" == completion.body["model"]


def test_cached_tokens_come_from_cached_content_token_count(sim):
    sim.set_fault("up", cached_tokens=3)
    completion = adapter.send(make_call(sim))
    assert completion.usage == TokenUsage(count_tokens(PROMPT), 12, 3)
    assert completion.body["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}


def test_missing_usage_is_none_not_zero(sim):
    sim.set_fault("up", omit_usage=True)
    completion = adapter.send(make_call(sim))
    assert completion.usage is None
    assert completion.body["choices"][0]["message"]["content"]


def test_tool_call_round_trip(sim):
    first = adapter.send(make_call(sim, body=weather_body()))
    message = first.body["choices"][0]["message"]
    assert first.body["choices"][0]["finish_reason"] == "tool_calls"
    (call,) = message["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}
    second = adapter.send(make_call(sim, body=weather_body(
        message, {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'})))
    assert '{"temp_c": 21}' in second.body["choices"][0]["message"]["content"]
    sent = sim.log("up")[1]["body"]["contents"]
    assert sent[-2:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                         "response": {"content": {"temp_c": 21}}}}]}]


# --- streaming -----------------------------------------------------------------------------------

def test_stream_yields_openai_chunks_then_a_usage_chunk(sim):
    sim.set_fault("up", served_model="gemini-2.0-flash-001", cached_tokens=2)
    stream = adapter.open_stream(make_call(sim, stream=True))
    try:
        chunks = drain(stream)
    finally:
        stream.close()
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:13]] == expected_words()
    assert chunks[13]["choices"][0]["finish_reason"] == "stop"
    assert chunks[14]["choices"] == []
    assert chunks[14]["usage"]["completion_tokens"] == 12
    assert len(chunks) == 15
    assert stream.usage == TokenUsage(count_tokens(PROMPT), 12, 2), "the last cumulative usage, not a sum"
    assert stream.delivered_text == expected_words()
    assert stream.served_model == "gemini-2.0-flash-001"
    (logged,) = sim.log("up")
    # The simulator refuses a stream without alt=sse, so this success also proves the adapter asked for SSE.
    assert logged["path"] == f"/up/v1beta/models/{UPSTREAM_MODEL}:streamGenerateContent"
    assert logged["stream"] is True


def test_stream_of_a_tool_call(sim):
    chunks = attempt(make_call(sim, stream=True, body=weather_body()))
    (delta,) = [c["choices"][0]["delta"] for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert delta["tool_calls"][0]["function"]["name"] == "get_weather"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_open_stream_returns_after_the_first_chunk(sim):
    # The upstream sends its first event, then dies: open_stream succeeds, the failure surfaces later.
    sim.set_fault("up", cut_after=1)
    stream = adapter.open_stream(make_call(sim, stream=True))
    assert stream.delivered_text == [] and stream.usage is None
    _, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.CONNECT


def test_stream_cut_mid_way_raises_and_keeps_what_was_delivered(sim):
    sim.set_fault("up", cut_after=3)
    stream = adapter.open_stream(make_call(sim, stream=True))
    received, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.CONNECT and error.falls_back
    assert len(received) == 4
    assert stream.delivered_text == expected_words(n=3)
    assert stream.usage is None, "a cut stream is charged from what was delivered"


@pytest.fixture
def ends_early():
    """A loopback upstream whose stream ends cleanly before any finishReason, as a proxy that gives up might."""
    event = {"candidates": [{"content": {"role": "model", "parts": [{"text": "half "}]}, "index": 0}]}

    def upstream(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return [f"data: {json.dumps(event)}\n\n".encode()] * 2

    server = make_server("127.0.0.1", 0, upstream, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_a_stream_that_ends_without_a_finish_reason_was_cut(sim, ends_early):
    call = make_call(sim, stream=True)
    stream = adapter.open_stream(UpstreamCall(**{**call.__dict__, "channel": "early", "base_url": ends_early}))
    received, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.CONNECT
    assert stream.delivered_text == ["half ", "half "] and stream.usage is None


def test_stream_without_usage_leaves_usage_none(sim):
    sim.set_fault("up", omit_usage=True)
    chunks = attempt(make_call(sim, stream=True))
    assert not [c for c in chunks if "usage" in c]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_that_stalls_past_the_timeout_is_a_timeout(sim):
    sim.set_fault("up", chunk_delay_ms=1500, reply_tokens=2)
    error = failure(make_call(sim, stream=True, timeout_s=0.5))
    assert error.error_class == ErrorClass.TIMEOUT, error.detail


# --- the key and the headers ---------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_key_travels_only_in_x_goog_api_key(sim, stream):
    # The simulator refuses a key= query parameter with 400, so success also proves the URL is clean.
    attempt(make_call(sim, stream=stream))
    (logged,) = sim.log("up")
    assert logged["headers"]["x-goog-api-key"] == KEY
    assert KEY not in logged["path"] and "key=" not in logged["path"]
    assert logged["headers"]["user-agent"].startswith("waybill/")
    names = logged["headers"]["names"].split(",")
    assert "authorization" not in names and "cookie" not in names
    assert not [n for n in names if n.startswith("x-stainless")]


# --- what the adapter refuses before calling -----------------------------------------------------

def test_embeddings_are_not_served(sim):
    error = failure(make_call(sim, endpoint="embeddings", body={"model": "e", "input": "hi"}))
    assert (error.error_class, error.detail) == (ErrorClass.BAD_RESPONSE, "gemini adapter serves no embeddings")
    assert error.falls_back
    assert sim.log("up") == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_request_gemini_cannot_take_is_a_client_error(sim, stream):
    video = {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}
    body = {"model": "gemini-flash", "messages": [{"role": "user", "content": [video]}]}
    error = failure(make_call(sim, stream=stream, body=body))
    assert (error.error_class, error.http_status, error.falls_back) == (ErrorClass.CLIENT_ERROR, 400, False)
    assert "unsupported type 'video_url'" in error.client_message
    assert sim.log("up") == []


# --- error classes -------------------------------------------------------------------------------

CLASSES = [
    (500, ErrorClass.UPSTREAM_5XX, True), (503, ErrorClass.UPSTREAM_5XX, True), (504, ErrorClass.UPSTREAM_5XX, True),
    (429, ErrorClass.RATE_LIMITED, True), (401, ErrorClass.KEY_REJECTED, True), (403, ErrorClass.KEY_REJECTED, True),
    (404, ErrorClass.MODEL_MISMATCH, True), (400, ErrorClass.CLIENT_ERROR, False),
    (413, ErrorClass.CLIENT_ERROR, False),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status, error_class, falls_back", CLASSES)
def test_upstream_status_is_classified(sim, status, error_class, falls_back, stream):
    sim.set_fault("up", status=status)
    error = failure(make_call(sim, stream=stream))
    assert (error.error_class, error.http_status, error.falls_back) == (error_class, status, falls_back)
    assert error.detail == f"{status}: simulated {status} from up"


def test_client_error_carries_the_upstream_message_for_the_client(sim):
    sim.set_fault("up", status=400)
    assert failure(make_call(sim)).client_message == "simulated 400 from up"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_resource_exhausted_is_rate_limited_with_the_retry_delay(sim, stream):
    sim.set_fault("up", status=429, retry_after=7)
    error = failure(make_call(sim, stream=stream))
    assert (error.error_class, error.http_status, error.retry_after) == (ErrorClass.RATE_LIMITED, 429, 7.0)


def test_resource_exhausted_as_the_first_stream_event_fails_open_stream(sim):
    sim.set_fault("up", status=429, retry_after=5, cut_after=0)
    with pytest.raises(UpstreamError) as caught:
        adapter.open_stream(make_call(sim, stream=True))
    assert (caught.value.error_class, caught.value.retry_after) == (ErrorClass.RATE_LIMITED, 5.0)
    assert caught.value.falls_back


def test_resource_exhausted_mid_stream_is_rate_limited_after_the_delivered_chunks(sim):
    sim.set_fault("up", status=429, retry_after=3, cut_after=2)
    stream = adapter.open_stream(make_call(sim, stream=True))
    _, error = read_until_failure(stream)
    assert (error.error_class, error.retry_after) == (ErrorClass.RATE_LIMITED, 3.0)
    assert stream.delivered_text == expected_words(n=2)


def test_an_unavailable_event_mid_stream_is_an_upstream_5xx(sim):
    sim.set_fault("up", status=503, cut_after=2)
    error = failure(make_call(sim, stream=True))
    assert (error.error_class, error.http_status) == (ErrorClass.UPSTREAM_5XX, 503)


def google_error(status: str, code: int, **extra) -> str:
    return json.dumps({"error": {"code": code, "message": "quota or key trouble", "status": status, **extra}})


@pytest.mark.parametrize("http_status", [403, 500, 200])
def test_resource_exhausted_counts_as_429_whatever_the_http_status(sim, http_status):
    error = adapter.classify_error(http_status, google_error("RESOURCE_EXHAUSTED", http_status), make_call(sim))
    assert (error.error_class, error.http_status) == (ErrorClass.RATE_LIMITED, 429)


def test_an_invalid_key_answered_with_400_is_a_rejected_key_not_the_clients_fault(sim):
    # This is how Google answers a bad API key: 400 INVALID_ARGUMENT with an ErrorInfo reason.
    text = google_error("INVALID_ARGUMENT", 400, details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}])
    error = adapter.classify_error(400, text, make_call(sim))
    assert (error.error_class, error.falls_back) == (ErrorClass.KEY_REJECTED, True)


def test_a_retry_after_header_wins_over_the_retry_info(sim):
    text = google_error("RESOURCE_EXHAUSTED", 429, details=[
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}])
    assert adapter.classify_error(429, text, make_call(sim)).retry_after == 1.5
    assert adapter.classify_error(429, text, make_call(sim), retry_after="9").retry_after == 9.0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_bad_body_is_a_bad_response(sim, stream):
    sim.set_fault("up", bad_body=True)
    error = failure(make_call(sim, stream=stream))
    assert error.error_class == ErrorClass.BAD_RESPONSE and error.falls_back, error.detail


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_dropped_connection_is_a_connect_error(sim, stream):
    sim.set_fault("up", drop=True)
    error = failure(make_call(sim, stream=stream))
    assert (error.error_class, error.http_status, error.falls_back) == (ErrorClass.CONNECT, None, True)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_slow_upstream_is_a_timeout(sim, stream):
    sim.set_fault("up", latency_ms=2000)
    error = failure(make_call(sim, stream=stream, timeout_s=0.5))
    assert error.error_class == ErrorClass.TIMEOUT and "0.5s" in error.detail


# --- keys never leak through error text ----------------------------------------------------------
# The simulator's error message names the channel from the URL path, so a channel path carrying a
# secret makes the upstream echo that secret back.

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", [500, 400])
def test_an_echoed_key_is_redacted_from_error_text(sim, status, stream):
    channel = f"echo {KEY}"
    sim.set_fault(channel, status=status)
    error = failure(make_call(sim, channel, stream=stream))
    assert KEY not in error.detail and KEY not in (error.client_message or "")
    assert "[redacted]" in error.detail
