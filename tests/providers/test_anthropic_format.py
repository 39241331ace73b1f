"""Outbound translation, for Anthropic channels: OpenAI chat bodies to the Messages API and its answers back."""
from __future__ import annotations

import json

import pytest

from app.providers.anthropic_format import (
    AnthropicToOpenAIStream, anthropic_error, anthropic_response_to_openai, anthropic_usage,
    openai_request_to_anthropic,
)
from app.providers.base import ErrorClass, TokenUsage, UpstreamError

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WEATHER_TOOL_OPENAI = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather by city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
WEATHER_TOOL_ANTHROPIC = {"name": "get_weather", "description": "Weather by city",
                          "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"]}


def to_anthropic(messages: list, **extra) -> dict:
    return openai_request_to_anthropic({"model": "claude", "messages": messages, **extra}, "claude-up", 4096)


# --- OpenAI request → Anthropic request ------------------------------------------------------------

def test_system_and_developer_messages_become_the_system_string():
    body = to_anthropic([{"role": "system", "content": "Be brief."},
                         {"role": "developer", "content": [{"type": "text", "text": "Use metric."},
                                                           {"type": "text", "text": "No emoji."}]},
                         {"role": "user", "content": "Hi"}])
    assert body["system"] == "Be brief.\n\nUse metric.\n\nNo emoji."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["model"] == "claude-up"


def test_multi_turn_keeps_order_and_roles():
    body = to_anthropic([{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
                         {"role": "user", "content": [{"type": "text", "text": "three"}]}])
    assert body["messages"] == [{"role": "user", "content": "one"},
                                {"role": "assistant", "content": [{"type": "text", "text": "two"}]},
                                {"role": "user", "content": [{"type": "text", "text": "three"}]}]
    assert "system" not in body


def test_consecutive_same_role_messages_are_merged():
    body = to_anthropic([{"role": "user", "content": "first"}, {"role": "user", "content": "second"}])
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "first"},
                                                             {"type": "text", "text": "second"}]}]


def test_max_tokens_comes_from_the_body_or_the_default():
    assert to_anthropic([{"role": "user", "content": "x"}])["max_tokens"] == 4096
    assert to_anthropic([{"role": "user", "content": "x"}], max_tokens=55)["max_tokens"] == 55
    assert to_anthropic([{"role": "user", "content": "x"}], max_completion_tokens=66, max_tokens=55)["max_tokens"] == 66


def test_sampling_stop_and_user_are_translated():
    body = to_anthropic([{"role": "user", "content": "x"}], temperature=0.3, top_p=0.9, stop="END", user="u-1",
                        presence_penalty=0.5)
    assert (body["temperature"], body["top_p"], body["stop_sequences"]) == (0.3, 0.9, ["END"])
    assert body["metadata"] == {"user_id": "u-1"}
    assert "presence_penalty" not in body
    assert to_anthropic([{"role": "user", "content": "x"}], stop=["a", "b"])["stop_sequences"] == ["a", "b"]


def test_tools_and_tool_choice_are_translated():
    messages = [{"role": "user", "content": "weather?"}]
    body = to_anthropic(messages, tools=[WEATHER_TOOL_OPENAI], tool_choice="auto")
    assert body["tools"] == [WEATHER_TOOL_ANTHROPIC]
    assert body["tool_choice"] == {"type": "auto"}
    assert to_anthropic(messages, tools=[WEATHER_TOOL_OPENAI], tool_choice="none")["tool_choice"] == {"type": "none"}
    assert to_anthropic(messages, tools=[WEATHER_TOOL_OPENAI], tool_choice="required")["tool_choice"] == {"type": "any"}
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert to_anthropic(messages, tools=[WEATHER_TOOL_OPENAI], tool_choice=named)["tool_choice"] == {
        "type": "tool", "name": "get_weather"}
    serial = to_anthropic(messages, tools=[WEATHER_TOOL_OPENAI], parallel_tool_calls=False)
    assert serial["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_assistant_tool_calls_and_tool_results_become_blocks():
    body = to_anthropic([
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "thanks"}])
    assert body["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
            {"type": "text", "text": "thanks"}]}]


def test_images_as_data_url_and_http_url():
    body = to_anthropic([{"role": "user", "content": [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]


@pytest.mark.parametrize("part, words", [
    ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "'input_audio'"),
    ({"type": "file", "file": {"file_id": "f1"}}, "'file'"),
    ({"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}, "data: URL"),
])
def test_unsupported_parts_raise_value_error_with_a_clear_message(part, words):
    with pytest.raises(ValueError, match=words):
        to_anthropic([{"role": "user", "content": [part]}])


def test_malformed_tool_call_arguments_and_roles_raise_value_error():
    bad_call = {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}
    with pytest.raises(ValueError, match="JSON object"):
        to_anthropic([{"role": "user", "content": "x"}, bad_call])
    with pytest.raises(ValueError, match="role"):
        to_anthropic([{"role": "function", "content": "x", "name": "f"}])
    with pytest.raises(ValueError, match="'n'"):
        to_anthropic([{"role": "user", "content": "x"}], n=2)


# --- Anthropic response → OpenAI response ----------------------------------------------------------

def anthropic_message(content: list, stop_reason: str = "end_turn", **usage) -> dict:
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-up-20250101",
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, **usage}}


def test_text_response_becomes_a_chat_completion_with_usage_in_openai_terms():
    data = anthropic_message([{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
                             cache_read_input_tokens=30, cache_creation_input_tokens=4)
    completion = anthropic_response_to_openai(data)
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "claude-up-20250101"
    choice = completion["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello there"}
    assert choice["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 44, "completion_tokens": 5, "total_tokens": 49,
                                   "prompt_tokens_details": {"cached_tokens": 30},
                                   "cache_creation_input_tokens": 4}


def test_tool_use_response_becomes_tool_calls():
    data = anthropic_message([{"type": "text", "text": "Checking."},
                              {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
                             stop_reason="tool_use")
    choice = anthropic_response_to_openai(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_tool_only_response_has_null_content():
    data = anthropic_message([{"type": "tool_use", "id": "t", "name": "f", "input": {}}], stop_reason="tool_use")
    assert anthropic_response_to_openai(data)["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize("stop_reason, finish", [("end_turn", "stop"), ("stop_sequence", "stop"),
                                                 ("max_tokens", "length"), ("tool_use", "tool_calls")])
def test_stop_reasons_map_to_finish_reasons(stop_reason, finish):
    data = anthropic_message([{"type": "text", "text": "x"}], stop_reason=stop_reason)
    assert anthropic_response_to_openai(data)["choices"][0]["finish_reason"] == finish


def test_anthropic_usage_counts_cache_reads_and_writes_as_prompt():
    assert anthropic_usage({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 30,
                            "cache_creation_input_tokens": 4}) == TokenUsage(44, 5, 30)
    no_cache = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": None}
    assert anthropic_usage(no_cache) == TokenUsage(10, 5, 0)
    assert anthropic_usage(None) is None
    with pytest.raises(UpstreamError) as caught:
        anthropic_usage({"input_tokens": 10, "output_tokens": -1})
    assert caught.value.error_class == ErrorClass.BAD_RESPONSE


# --- Anthropic stream → OpenAI chunks --------------------------------------------------------------

def anthropic_events(blocks: list[tuple[str, dict, list[dict]]], stop_reason: str, output_tokens: int) -> list:
    """A stream as Anthropic sends it: (event, data) pairs."""
    events = [("message_start", {"type": "message_start", "message": {
        "id": "msg_s", "type": "message", "role": "assistant", "model": "claude-up-20250101", "content": [],
        "stop_reason": None, "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 8}}}),
        ("ping", {"type": "ping"})]
    for index, (_kind, start, deltas) in enumerate(blocks):
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason},
                                     "usage": {"output_tokens": output_tokens}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def translate(events: list) -> tuple[AnthropicToOpenAIStream, list[dict]]:
    translator = AnthropicToOpenAIStream()
    chunks = [chunk for name, data in events for chunk in translator.feed(name, data)]
    return translator, chunks


def test_text_stream_becomes_role_content_finish_and_usage_chunks():
    text = ("text", {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hel"},
                                                    {"type": "text_delta", "text": "lo"}])
    translator, chunks = translate(anthropic_events([text], "end_turn", 7))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, None, None, "stop"]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"claude-up-20250101"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 28
    assert chunks[-1]["usage"]["completion_tokens"] == 7
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 8}
    assert translator.usage == TokenUsage(28, 7, 8)
    assert translator.model == "claude-up-20250101"
    assert translator.finished


def test_tool_use_stream_becomes_tool_call_deltas():
    tool = ("tool_use", {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}},
            [{"type": "input_json_delta", "partial_json": ""},
             {"type": "input_json_delta", "partial_json": '{"city": '},
             {"type": "input_json_delta", "partial_json": '"Paris"}'}])
    text = ("text", {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Let me check."}])
    _translator, chunks = translate(anthropic_events([text, tool], "tool_use", 9))
    tool_deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
                   if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert tool_deltas[0] == {"index": 0, "id": "toolu_9", "type": "function",
                              "function": {"name": "get_weather", "arguments": ""}}
    assert [d["function"]["arguments"] for d in tool_deltas[1:]] == ['{"city": ', '"Paris"}']
    assert all(d["index"] == 0 for d in tool_deltas)
    assert json.loads("".join(d["function"]["arguments"] for d in tool_deltas)) == {"city": "Paris"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"]


def test_stream_without_usage_reports_none_and_sends_no_usage_chunk():
    translator = AnthropicToOpenAIStream()
    translator.feed("message_start", {"type": "message_start", "message": {"id": "m", "model": "c"}})
    chunks = translator.feed("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}})
    assert chunks[0]["choices"][0]["finish_reason"] == "length"
    assert translator.feed("message_stop", {"type": "message_stop"}) == []
    assert translator.usage is None


def test_error_event_raises_an_upstream_5xx():
    translator = AnthropicToOpenAIStream()
    translator.feed("message_start", {"type": "message_start", "message": {"id": "m", "model": "c"}})
    with pytest.raises(UpstreamError) as caught:
        translator.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert caught.value.error_class == ErrorClass.UPSTREAM_5XX
    assert "overloaded_error" in caught.value.detail and caught.value.falls_back


def test_unknown_events_are_ignored():
    assert AnthropicToOpenAIStream().feed("something_new", {"type": "something_new"}) == []


def test_anthropic_error_envelope_names_the_type_for_the_status():
    assert anthropic_error(529, "busy") == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert anthropic_error(503, "down")["error"]["type"] == "api_error"
    assert anthropic_error(429, "slow")["error"]["type"] == "rate_limit_error"
