"""Inbound translation, for Claude clients: Messages API requests to chat bodies, and the answers back."""
from __future__ import annotations

import json

import pytest

from app.providers.anthropic_format import anthropic_response_to_openai
from app.proxy.clients.anthropic import (
    OpenAIToAnthropicStream, anthropic_request_to_openai, openai_response_to_anthropic,
)
from tests.proxy.clients.openai_chunks import openai_chunk
from tests.providers.test_anthropic_format import (
    PNG_B64, WEATHER_TOOL_ANTHROPIC, WEATHER_TOOL_OPENAI, anthropic_message,
)


# --- Anthropic request → OpenAI request ------------------------------------------------------------

def test_messages_request_becomes_a_chat_body():
    body = anthropic_request_to_openai({
        "model": "claude-x", "max_tokens": 300, "system": [{"type": "text", "text": "Be brief."}],
        "temperature": 0.5, "top_p": 0.8, "stop_sequences": ["END"], "stream": True, "top_k": 5,
        "metadata": {"user_id": "u-7"},
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": [{"type": "text", "text": "Again"}]}]})
    assert body == {"model": "claude-x", "max_tokens": 300, "temperature": 0.5, "top_p": 0.8, "stop": ["END"],
                    "stream": True, "stream_options": {"include_usage": True}, "user": "u-7",
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Again"}]}


def test_messages_images_become_image_url_parts():
    body = anthropic_request_to_openai({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Which is a cat?"}]}]})
    assert body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Which is a cat?"}]


def test_messages_tool_use_and_tool_result_become_tool_calls_and_tool_messages():
    body = anthropic_request_to_openai({
        "model": "c", "max_tokens": 10, "tools": [WEATHER_TOOL_ANTHROPIC],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "and tomorrow?"}]}]})
    assert body["tools"] == [WEATHER_TOOL_OPENAI]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][1] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert body["messages"][2:] == [{"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                                    {"role": "user", "content": "and tomorrow?"}]


@pytest.mark.parametrize("choice, expected", [({"type": "auto"}, "auto"), ({"type": "any"}, "required"),
                                              ({"type": "none"}, "none")])
def test_messages_tool_choice_kinds(choice, expected):
    body = anthropic_request_to_openai({"model": "c", "max_tokens": 10, "tools": [WEATHER_TOOL_ANTHROPIC],
                                        "tool_choice": choice, "messages": [{"role": "user", "content": "x"}]})
    assert body["tool_choice"] == expected


@pytest.mark.parametrize("change, words", [
    ({"max_tokens": None}, "max_tokens"), ({"model": ""}, "model"), ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "'document'"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search_20250305"),
])
def test_messages_request_problems_raise_value_error(change, words):
    body = {"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], **change}
    with pytest.raises(ValueError, match=words):
        anthropic_request_to_openai(body)


# --- OpenAI response → Anthropic response ----------------------------------------------------------

def test_chat_completion_becomes_a_message_with_uncached_input_tokens():
    message = openai_response_to_anthropic({
        "id": "chatcmpl-abc", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Hi"}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 30}}},
        "claude-sonnet")
    assert message["id"] == "msg_abc"
    assert (message["type"], message["role"], message["model"]) == ("message", "assistant", "claude-sonnet")
    assert message["content"] == [{"type": "text", "text": "Hi"}]
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"] == {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 30,
                                "cache_creation_input_tokens": 0}


def test_chat_completion_tool_calls_become_tool_use_blocks():
    message = openai_response_to_anthropic({"id": "chatcmpl-t", "choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2}}, "claude")
    assert message["content"] == [{"type": "tool_use", "id": "call_1", "name": "get_weather",
                                   "input": {"city": "Paris"}}]
    assert message["stop_reason"] == "tool_use"


def test_round_trip_through_both_response_translations_keeps_usage():
    original = anthropic_message([{"type": "text", "text": "x"}], cache_read_input_tokens=30,
                                 cache_creation_input_tokens=4)
    back = openai_response_to_anthropic(anthropic_response_to_openai(original), "claude")
    assert back["usage"] == {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 30,
                             "cache_creation_input_tokens": 4}


# --- OpenAI chunks → Anthropic stream --------------------------------------------------------------

def test_openai_text_chunks_become_an_anthropic_event_stream():
    translator = OpenAIToAnthropicStream("claude-sonnet")
    events = []
    for chunk in [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "Hel"}),
                  openai_chunk({"content": "lo"}), openai_chunk({}, "stop"),
                  openai_chunk(usage={"prompt_tokens": 12, "completion_tokens": 2,
                                      "prompt_tokens_details": {"cached_tokens": 4}})]:
        events += translator.feed(chunk)
    events += translator.finish()
    assert [name for name, _ in events] == ["message_start", "content_block_start", "content_block_delta",
                                            "content_block_delta", "content_block_stop", "message_delta",
                                            "message_stop"]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert (start["id"], start["model"], start["role"], start["content"]) == ("msg_s", "claude-sonnet", "assistant", [])
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [e[1]["delta"]["text"] for e in events[2:4]] == ["Hel", "lo"]
    delta = events[5][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"] == {"input_tokens": 8, "output_tokens": 2, "cache_read_input_tokens": 4,
                              "cache_creation_input_tokens": 0}
    assert translator.finish() == []


def test_openai_tool_call_chunks_become_tool_use_blocks_with_json_deltas():
    translator = OpenAIToAnthropicStream("claude")
    events = []
    for chunk in [openai_chunk({"role": "assistant", "content": "Checking."}),
                  openai_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                "function": {"name": "get_weather", "arguments": ""}}]}),
                  openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                  openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
                  openai_chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                                "function": {"name": "get_time", "arguments": "{}"}}]}),
                  openai_chunk({}, "tool_calls")]:
        events += translator.feed(chunk)
    events += translator.finish()
    starts = [data for name, data in events if name == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use", "tool_use"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}
    json_parts = [d["delta"]["partial_json"] for n, d in events
                  if n == "content_block_delta" and d["index"] == 1]
    assert json.loads("".join(json_parts)) == {"city": "Paris"}
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert stops == [0, 1, 2]
    assert [d for n, d in events if n == "message_delta"][0]["delta"]["stop_reason"] == "tool_use"


def test_finish_alone_still_makes_a_complete_message():
    events = OpenAIToAnthropicStream("claude").finish()
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
