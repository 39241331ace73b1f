"""The Anthropic adapter against the simulator: translation, usage, streams, error classes, headers."""
from __future__ import annotations

import dataclasses
import json

import pytest

from app.providers import anthropic as adapter
from tests.providers.adapter_calls import bound_to, drain, read_until_failure
from app.providers.base import Completion, ErrorClass, TokenUsage, UpstreamCall
from app.providers.registry import adapter_for
from app.simulator.wire import count_tokens, reply_words

KEY = "sk-ant-chan-secret-0123456789"
UPSTREAM_MODEL = "claude-sonnet-4-20250514"
PROMPT = "Where does my request go?"
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                                 "parameters": {"type": "object",
                                                                "properties": {"city": {"type": "string"}}}}}

attempt, failure = bound_to(adapter)


def make_call(sim, channel: str = "claude", *, stream: bool = False, body: dict | None = None,
              endpoint: str = "chat", key: str = KEY, timeout_s: float = 5) -> UpstreamCall:
    """A call to one simulated channel; the base URL is the API root, as Anthropic's SDK takes it."""
    if body is None:
        body = {"model": "claude-sonnet", "messages": [{"role": "user", "content": PROMPT}]}
    return UpstreamCall(channel=channel, provider="anthropic", base_url=f"{sim.root}/{channel}", api_key=key,
                        timeout_s=timeout_s, upstream_model=UPSTREAM_MODEL, endpoint=endpoint, body=body,
                        stream=stream)






def expected_text(channel: str = "claude", n: int = 12) -> str:
    return "".join(reply_words(channel, UPSTREAM_MODEL, n))


# --- success -------------------------------------------------------------------------------------

def test_registry_serves_anthropic_with_this_adapter():
    assert adapter_for("anthropic") is adapter


def test_send_returns_an_openai_completion_with_usage(sim):
    completion = adapter.send(make_call(sim))
    assert isinstance(completion, Completion)
    assert completion.body["object"] == "chat.completion"
    assert completion.body["choices"][0]["message"] == {"role": "assistant", "content": expected_text(),
                                                        "refusal": None}
    assert completion.body["choices"][0]["finish_reason"] == "stop"
    assert completion.usage == TokenUsage(count_tokens(PROMPT), 12, 0)
    assert completion.body["usage"]["prompt_tokens"] == count_tokens(PROMPT)
    assert completion.served_model == UPSTREAM_MODEL


def test_request_is_translated_to_the_messages_api(sim):
    body = {"model": "claude-sonnet", "max_tokens": 7, "temperature": 0.2, "stop": "END",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]}
    completion = adapter.send(make_call(sim, body=body))
    (logged,) = sim.log("claude")
    assert logged["path"] == "/claude/v1/messages"
    assert logged["body"] == {"model": UPSTREAM_MODEL, "max_tokens": 7, "temperature": 0.2,
                              "stop_sequences": ["END"], "system": "Be brief.",
                              "messages": [{"role": "user", "content": PROMPT}]}
    assert completion.body["choices"][0]["finish_reason"] == "length"
    assert completion.usage.completion_tokens == 7


def test_max_tokens_defaults_to_the_calls_default_when_the_client_gave_none(sim):
    adapter.send(make_call(sim))
    adapter.send(dataclasses.replace(make_call(sim), default_max_tokens=64000))
    assert [e["body"]["max_tokens"] for e in sim.log("claude")] == [4096, 64000]


def test_cached_tokens_are_counted_in_the_prompt(sim):
    sim.set_fault("claude", cached_tokens=3)
    completion = adapter.send(make_call(sim))
    assert completion.usage == TokenUsage(count_tokens(PROMPT), 12, 3)
    assert completion.body["usage"]["prompt_tokens_details"] == {"cached_tokens": 3}
    stream = adapter.open_stream(make_call(sim, stream=True))
    drain(stream)
    stream.close()
    assert stream.usage == TokenUsage(count_tokens(PROMPT), 12, 3)


def test_served_model_is_what_the_upstream_reported(sim):
    sim.set_fault("claude", served_model="claude-3-haiku-20240307")
    assert adapter.send(make_call(sim)).served_model == "claude-3-haiku-20240307"
    stream = adapter.open_stream(make_call(sim, stream=True))
    drain(stream)
    stream.close()
    assert stream.served_model == "claude-3-haiku-20240307"


def test_missing_usage_is_none_not_zero(sim):
    sim.set_fault("claude", omit_usage=True)
    assert adapter.send(make_call(sim)).usage is None
    stream = adapter.open_stream(make_call(sim, stream=True))
    chunks = drain(stream)
    stream.close()
    assert stream.usage is None
    assert all("usage" not in chunk for chunk in chunks)
    assert "".join(stream.delivered_text) == expected_text()


def test_negative_usage_is_a_bad_response(sim):
    sim.set_fault("claude", cached_tokens=-5)
    assert failure(make_call(sim)).error_class == ErrorClass.BAD_RESPONSE


def test_tool_call_round_trip(sim):
    first = adapter.send(make_call(sim, body={"model": "c", "tools": [WEATHER_TOOL],
                                              "messages": [{"role": "user", "content": "weather in Paris?"}]}))
    choice = first.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert sim.log("claude")[0]["body"]["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]

    follow_up = {"model": "c", "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "weather in Paris?"}, choice["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}]}
    second = adapter.send(make_call(sim, body=follow_up))
    assert "18C and sunny" in second.body["choices"][0]["message"]["content"]
    sent = sim.log("claude")[1]["body"]["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use" and sent[1]["content"][0]["input"] == {"city": "Paris"}
    assert sent[2] == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                                    "content": "18C and sunny"}]}


def test_streamed_tool_call_arrives_as_tool_call_deltas(sim):
    body = {"model": "c", "tools": [WEATHER_TOOL], "messages": [{"role": "user", "content": "weather?"}]}
    stream = adapter.open_stream(make_call(sim, stream=True, body=body))
    chunks = drain(stream)
    stream.close()
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
             if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"].startswith("toolu_")
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


# --- streaming -----------------------------------------------------------------------------------

def test_stream_yields_openai_chunks_ending_with_a_usage_chunk(sim):
    stream = adapter.open_stream(make_call(sim, stream=True))
    chunks = drain(stream)
    stream.close()
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == count_tokens(PROMPT)
    assert chunks[-1]["usage"]["completion_tokens"] == 12
    assert "".join(stream.delivered_text) == expected_text()
    assert stream.usage == TokenUsage(count_tokens(PROMPT), 12, 0)
    (logged,) = sim.log("claude")
    assert logged["stream"] is True and logged["body"]["stream"] is True


def test_open_stream_returns_after_the_first_chunk(sim):
    sim.set_fault("claude", cut_after=0)
    stream = adapter.open_stream(make_call(sim, stream=True))
    assert stream.delivered_text == [] and stream.usage is None
    _, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.CONNECT


def test_stream_cut_mid_way_keeps_what_was_delivered(sim):
    sim.set_fault("claude", cut_after=3)
    stream = adapter.open_stream(make_call(sim, stream=True))
    received, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.CONNECT and error.falls_back
    assert len(received) == 4
    assert "".join(stream.delivered_text) == expected_text(n=3)
    assert stream.usage is None


def test_overloaded_error_event_mid_stream_is_an_upstream_5xx(sim):
    sim.set_fault("claude", status=529, cut_after=2)
    stream = adapter.open_stream(make_call(sim, stream=True))
    _, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.UPSTREAM_5XX and error.falls_back
    assert "overloaded_error" in error.detail
    assert "".join(stream.delivered_text) == expected_text(n=2)


def test_stream_that_stalls_past_the_timeout_is_a_timeout(sim):
    sim.set_fault("claude", chunk_delay_ms=1500, reply_tokens=1)
    stream = adapter.open_stream(make_call(sim, stream=True, timeout_s=0.5))
    _, error = read_until_failure(stream)
    assert error.error_class == ErrorClass.TIMEOUT, error.detail


# --- headers sent upstream -----------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_upstream_gets_the_channel_key_as_x_api_key_and_nothing_of_the_client(sim, stream):
    attempt(make_call(sim, stream=stream))
    (logged,) = sim.log("claude")
    headers = logged["headers"]
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["user-agent"].startswith("waybill/")
    names = headers["names"].split(",")
    assert "authorization" not in names and "cookie" not in names
    assert not [n for n in names if n.startswith("x-stainless")]


# --- error classes -------------------------------------------------------------------------------

CLASSES = [
    (529, ErrorClass.UPSTREAM_5XX, True), (500, ErrorClass.UPSTREAM_5XX, True), (503, ErrorClass.UPSTREAM_5XX, True),
    (429, ErrorClass.RATE_LIMITED, True), (401, ErrorClass.KEY_REJECTED, True), (403, ErrorClass.KEY_REJECTED, True),
    (404, ErrorClass.MODEL_MISMATCH, True), (400, ErrorClass.CLIENT_ERROR, False),
    (413, ErrorClass.CLIENT_ERROR, False),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status, error_class, falls_back", CLASSES)
def test_upstream_status_is_classified(sim, status, error_class, falls_back, stream):
    sim.set_fault("claude", status=status)
    error = failure(make_call(sim, stream=stream))
    assert (error.error_class, error.http_status, error.falls_back) == (error_class, status, falls_back)
    assert error.detail == f"{status}: simulated {status} from claude"


def test_429_retry_after_is_parsed(sim):
    sim.set_fault("claude", status=429, retry_after=7)
    assert failure(make_call(sim)).retry_after == 7.0
    sim.set_fault("claude", status=429, retry_after=12)
    assert failure(make_call(sim, stream=True)).retry_after == 12.0


def test_client_error_carries_the_upstream_message_for_the_client(sim):
    sim.set_fault("claude", status=400)
    assert failure(make_call(sim)).client_message == "simulated 400 from claude"


def test_a_part_anthropic_cannot_take_is_a_client_error_without_an_upstream_call(sim):
    body = {"model": "c", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}
    error = failure(make_call(sim, body=body))
    assert (error.error_class, error.http_status, error.falls_back) == (ErrorClass.CLIENT_ERROR, 400, False)
    assert "input_audio" in error.client_message
    assert sim.log("claude") == []


def test_embeddings_are_not_served(sim):
    error = failure(make_call(sim, endpoint="embeddings", body={"model": "e", "input": "x"}))
    assert error.error_class == ErrorClass.BAD_RESPONSE and error.falls_back
    assert "no embeddings" in error.detail
    assert sim.log("claude") == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_bad_body_is_a_bad_response(sim, stream):
    sim.set_fault("claude", bad_body=True)
    assert failure(make_call(sim, stream=stream)).error_class == ErrorClass.BAD_RESPONSE


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_dropped_connection_is_a_connect_error(sim, stream):
    sim.set_fault("claude", drop=True)
    error = failure(make_call(sim, stream=stream))
    assert (error.error_class, error.http_status, error.falls_back) == (ErrorClass.CONNECT, None, True)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_slow_upstream_is_a_timeout(sim, stream):
    sim.set_fault("claude", latency_ms=2000)
    error = failure(make_call(sim, stream=stream, timeout_s=0.5))
    assert error.error_class == ErrorClass.TIMEOUT


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_error_detail_never_carries_the_channel_key(sim, stream):
    # The simulator echoes the channel name in its error text, so a channel named after the key stands in for
    # an upstream that quotes the key back; this key matches no credential pattern, only the key itself.
    key = "relaykey0123456789abcdef"
    channel = "echo-" + key
    sim.set_fault(channel, status=529, cut_after=1)  # on a stream: an error event after one delta
    error = failure(make_call(sim, channel, key=key, stream=stream))
    assert error.error_class == ErrorClass.UPSTREAM_5XX
    assert key not in error.detail and "echo-[redacted]" in error.detail
