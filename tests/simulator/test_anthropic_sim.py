"""The simulator speaks Anthropic's Messages wire protocol (proved with the official SDK) and obeys its fault knobs."""
from __future__ import annotations

import json

import anthropic
import httpx2
import pytest
import requests

from app.simulator.wire import count_tokens, reply_words

SYSTEM = "Be brief."
MESSAGES = [{"role": "user", "content": "Where does my request go?"}]
PROMPT_TEXT = "Be brief. Where does my request go?"
WEATHER_TOOL = {"name": "get_weather", "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def sdk(sim, channel: str = "chan", **options) -> anthropic.Anthropic:
    """The official Anthropic SDK pointed at one simulated channel, retries off."""
    return anthropic.Anthropic(base_url=f"{sim.root}/{channel}", api_key="sk-ant-test", max_retries=0,
                               timeout=options.pop("timeout", 10), **options)


def create(client: anthropic.Anthropic, **extra):
    params = {"model": "claude-sim", "max_tokens": 100, "system": SYSTEM, "messages": MESSAGES, **extra}
    return client.messages.create(**params)


def raw_events(sim, channel: str = "raw", **body) -> list[tuple[str, dict]]:
    """POST a streaming request by hand and parse the SSE body into (event, data) pairs."""
    response = requests.post(f"{sim.root}/{channel}/v1/messages", timeout=10,
                             headers={"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"},
                             json={"model": "claude-sim", "max_tokens": 100, "messages": MESSAGES, "stream": True,
                                   **body})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        if block.strip():
            lines = block.split("\n")
            assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
            events.append((lines[0][7:], json.loads(lines[1][6:])))
    return events


def expected_text(channel: str = "chan", n: int = 12) -> str:
    return "".join(reply_words(channel, "claude-sim", n))


# --- the wire protocol, through the official SDK ---------------------------------------------------

def test_message_json_has_anthropic_shape_and_usage(sim):
    message = create(sdk(sim))
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "claude-sim"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == expected_text()
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == count_tokens(PROMPT_TEXT) == 9
    assert message.usage.output_tokens == 12
    assert message.usage.cache_read_input_tokens == 0


def test_max_tokens_truncates_the_reply(sim):
    message = create(sdk(sim), max_tokens=5)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert message.content[0].text == expected_text(n=5)


def test_stream_helper_accumulates_the_same_message(sim):
    client = sdk(sim)
    with client.messages.stream(model="claude-sim", max_tokens=100, system=SYSTEM, messages=MESSAGES) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == expected_text()
    assert len(pieces) == 12
    assert final.content[0].text == expected_text()
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 12)


def test_raw_stream_is_typed_server_sent_events_in_order(sim):
    events = raw_events(sim)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert [n for n in names if n.startswith("content_block")] == (
        ["content_block_start"] + ["content_block_delta"] * 12 + ["content_block_stop"])
    assert set(names) <= {"message_start", "ping", "content_block_start", "content_block_delta",
                          "content_block_stop", "message_delta", "message_stop"}
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] == count_tokens(MESSAGES[0]["content"])
    assert start["content"] == [] and start["stop_reason"] is None
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"] == {"output_tokens": 12}
    texts = [d["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert "".join(texts) == expected_text("raw")


def test_sdk_raw_stream_events(sim):
    stream = create(sdk(sim), stream=True)
    types = [event.type for event in stream]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types.count("content_block_delta") == 12


def test_cached_tokens_are_reported_as_cache_reads_outside_input_tokens(sim):
    sim.set_fault("chan", cached_tokens=4)
    message = create(sdk(sim))
    assert message.usage.cache_read_input_tokens == 4
    assert message.usage.input_tokens == 9 - 4
    with sdk(sim).messages.stream(model="claude-sim", max_tokens=100, system=SYSTEM, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (5, 4)


def test_tool_use_round_trip(sim):
    client = sdk(sim)
    first = create(client, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "What is the weather?"}])
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"city": "Paris"})
    assert call.id.startswith("toolu_")
    second = create(client, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "What is the weather?"},
        {"role": "assistant", "content": [call.model_dump(include={"type", "id", "name", "input"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]}])
    assert second.stop_reason == "end_turn"
    assert "18C and sunny" in second.content[0].text
    assert sim.log("chan")[1]["body"]["messages"][2]["content"][0]["tool_use_id"] == call.id


def test_streamed_tool_use_sends_input_json_deltas(sim):
    client = sdk(sim)
    with client.messages.stream(model="claude-sim", max_tokens=100, tools=[WEATHER_TOOL],
                                messages=[{"role": "user", "content": "weather in Paris?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Paris"}
    events = raw_events(sim, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "weather?"}])
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert all(d["delta"]["type"] == "input_json_delta" for n, d in events if n == "content_block_delta")
    assert len(fragments) > 1 and json.loads("".join(fragments)) == {"city": "Paris"}


def test_weather_without_tools_is_a_plain_reply(sim):
    message = create(sdk(sim), messages=[{"role": "user", "content": "weather?"}])
    assert message.content[0].type == "text" and message.stop_reason == "end_turn"


# --- requests and the log --------------------------------------------------------------------------

def test_request_log_records_the_sdk_headers(sim):
    create(sdk(sim))
    (logged,) = sim.log("chan")
    assert logged["path"] == "/chan/v1/messages"
    assert logged["model"] == "claude-sim" and logged["stream"] is False
    # This SDK release sends the key as a Bearer token; older ones send x-api-key. The simulator takes both.
    headers = logged["headers"]
    assert headers.get("x-api-key") == "sk-ant-test" or headers.get("authorization") == "Bearer sk-ant-test"
    assert headers["anthropic-version"]
    assert headers["user-agent"].startswith("Anthropic/Python")
    assert "x-stainless-lang" in headers["names"].split(",")


def test_bearer_auth_is_accepted_and_missing_auth_is_a_401(sim):
    url = f"{sim.root}/chan/v1/messages"
    body = {"model": "claude-sim", "max_tokens": 10, "messages": MESSAGES}
    ok = requests.post(url, json=body, timeout=10,
                       headers={"Authorization": "Bearer sk-ant-test", "anthropic-version": "2023-06-01"})
    assert ok.status_code == 200 and ok.json()["type"] == "message"
    missing = requests.post(url, json=body, timeout=10, headers={"anthropic-version": "2023-06-01"})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert len(sim.log("chan")) == 1, "a refused request is not logged as an upstream call"


def test_malformed_request_is_an_anthropic_400(sim):
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk(sim).messages.create(model="claude-sim", max_tokens=0, messages=MESSAGES)
    assert caught.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "max_tokens: Field required"}}
    assert sim.log("chan") == []


# --- fault knobs -----------------------------------------------------------------------------------

def test_529_is_an_overloaded_error(sim):
    sim.set_fault("chan", status=529)
    with pytest.raises(anthropic.APIStatusError) as caught:
        create(sdk(sim))
    assert caught.value.status_code == 529
    assert isinstance(caught.value, anthropic.InternalServerError)
    assert caught.value.body == {"type": "error", "error": {"type": "overloaded_error",
                                                            "message": "simulated 529 from chan"}}


@pytest.mark.parametrize("status, error, error_type", [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"), (404, anthropic.NotFoundError, "not_found_error"),
    (500, anthropic.InternalServerError, "api_error"), (503, anthropic.InternalServerError, "api_error")])
def test_status_faults_use_anthropic_error_types(sim, status, error, error_type):
    sim.set_fault("chan", status=status)
    with pytest.raises(error) as caught:
        create(sdk(sim))
    assert caught.value.body["error"]["type"] == error_type


def test_429_carries_retry_after_on_json_and_stream(sim):
    sim.set_fault("chan", status=429, retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as caught:
        create(sdk(sim))
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.RateLimitError):
        create(sdk(sim), stream=True)


def test_drop_closes_the_connection(sim):
    sim.set_fault("chan", drop=True)
    with pytest.raises(anthropic.APIConnectionError) as caught:
        create(sdk(sim))
    assert not isinstance(caught.value, anthropic.APITimeoutError)


def test_latency_beyond_the_client_timeout_times_out(sim):
    sim.set_fault("chan", latency_ms=1500)
    with pytest.raises(anthropic.APITimeoutError):
        create(sdk(sim, timeout=0.3))


def test_cut_after_breaks_the_stream_mid_way(sim):
    sim.set_fault("chan", cut_after=2)
    texts = []
    # The SDK wraps connection errors only while sending; a body cut mid-read surfaces as its transport's error.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        for event in create(sdk(sim), stream=True):
            if event.type == "content_block_delta":
                texts.append(event.delta.text)
            assert len(texts) < 50
    assert texts == ["Simulated ", "reply "]


def test_status_with_cut_after_sends_an_error_event_mid_stream(sim):
    sim.set_fault("chan", status=529, cut_after=3)
    events = raw_events(sim, "chan")
    assert [n for n, _ in events].count("content_block_delta") == 3
    assert events[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                               "message": "simulated 529 from chan"}})
    with pytest.raises(anthropic.APIStatusError) as caught:
        list(create(sdk(sim), stream=True))
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_served_model_reply_tokens_and_omit_usage(sim):
    sim.set_fault("chan", served_model="claude-sim-20990101", reply_tokens=3)
    message = create(sdk(sim))
    assert message.model == "claude-sim-20990101"
    assert message.usage.output_tokens == 3 and message.stop_reason == "end_turn"
    sim.set_fault("chan", omit_usage=True)
    headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    url = f"{sim.root}/chan/v1/messages"
    plain = requests.post(url, headers=headers, timeout=10,
                          json={"model": "claude-sim", "max_tokens": 10, "messages": MESSAGES}).json()
    assert "usage" not in plain and plain["content"]
    events = raw_events(sim, "chan")
    assert all("usage" not in data and "usage" not in data.get("message", {}) for _, data in events)


def test_bad_body_answers_200_with_something_that_is_not_json_or_sse(sim):
    sim.set_fault("chan", bad_body=True)
    headers = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    url = f"{sim.root}/chan/v1/messages"
    plain = requests.post(url, headers=headers, json={"model": "m", "max_tokens": 5, "messages": MESSAGES}, timeout=10)
    assert plain.status_code == 200
    with pytest.raises(ValueError):
        plain.json()
    streamed = requests.post(url, headers=headers, timeout=10,
                             json={"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": True})
    assert streamed.status_code == 200 and "event:" not in streamed.text
