"""Translation between OpenAI chat completions and Gemini generateContent, both ways, without I/O."""
from __future__ import annotations

import json
import re

import pytest

from app.providers.base import TokenUsage
from app.providers.gemini_format import (
    ERROR_INFO, RETRY_INFO, GeminiToOpenAIStream, gemini_response_to_openai, gemini_usage, google_error,
    openai_request_to_gemini,
)

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def to_gemini(messages: list, **options) -> dict:
    return openai_request_to_gemini({"model": "gemini-2.0-flash", "messages": messages, **options})


def gemini_answer(parts: list, finish: str = "STOP", usage: dict | None = None, **extra) -> dict:
    data = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
            **extra}
    if usage is not None:
        data["usageMetadata"] = usage
    return data


# --- OpenAI request -> Gemini --------------------------------------------------------------------

def test_roles_become_user_and_model_and_system_becomes_the_system_instruction():
    request = to_gemini([{"role": "system", "content": "Be brief."},
                         {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                         {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Bonjour"},
                         {"role": "user", "content": "Weather?"}])
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]}
    assert request["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]},
                                   {"role": "model", "parts": [{"text": "Bonjour"}]},
                                   {"role": "user", "parts": [{"text": "Weather?"}]}]
    assert "generationConfig" not in request and "tools" not in request


def test_consecutive_turns_of_one_role_are_merged_and_empty_ones_dropped():
    request = to_gemini([{"role": "user", "content": "one"}, {"role": "user", "content": [
        {"type": "text", "text": "two"}, {"type": "text", "text": "three"}]},
        {"role": "assistant", "content": ""}, {"role": "user", "content": "four"}])
    assert request["contents"] == [{"role": "user", "parts": [{"text": t} for t in ("one", "two", "three", "four")]}]


def test_generation_config_from_sampling_options_and_stop():
    request = to_gemini([{"role": "user", "content": "Hi"}], max_tokens=50, temperature=0.2, top_p=0.9,
                        stop="END", seed=7)
    assert request["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2, "topP": 0.9,
                                           "stopSequences": ["END"], "seed": 7}
    newer = to_gemini([{"role": "user", "content": "Hi"}], max_completion_tokens=20, max_tokens=50,
                      stop=["a", "b"])
    assert newer["generationConfig"] == {"maxOutputTokens": 20, "stopSequences": ["a", "b"]}


def test_json_response_format_asks_for_json():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request = to_gemini([{"role": "user", "content": "Hi"}],
                        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    assert request["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_images_by_data_url_are_inline_and_by_http_url_are_file_data():
    request = to_gemini([{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=large", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photo"}}]}])
    assert request["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/cat.webp?size=large", "mimeType": "image/webp"}},
        {"fileData": {"fileUri": "https://example.com/photo", "mimeType": "image/jpeg"}}]


@pytest.mark.parametrize("part, words", [
    ({"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}, "unsupported type 'video_url'"),
    ({"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}, "neither a data: nor an http(s) URL"),
    ({"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}, "not base64"),
], ids=["unknown part type", "ftp image", "non-base64 data url"])
def test_content_gemini_cannot_take_is_a_value_error(part, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        to_gemini([{"role": "user", "content": [part]}])


def test_tools_and_tool_choice_become_function_declarations_and_calling_config():
    loose = {"type": "function", "function": {"name": "ping", "parameters": {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
        "properties": {"additionalProperties": {"type": "string"}}}}}
    request = to_gemini([{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL, loose], tool_choice="auto")
    assert request["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Current weather in a city",
         "parameters": WEATHER_TOOL["function"]["parameters"]},
        # Gemini refuses these JSON Schema keywords; a property that happens to carry the name stays.
        {"name": "ping", "parameters": {"type": "object", "properties": {"additionalProperties": {"type": "string"}}}},
    ]}]
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize("choice, config", [
    ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_each_tool_choice_maps_to_a_mode(choice, config):
    request = to_gemini([{"role": "user", "content": "Hi"}], tools=[WEATHER_TOOL], tool_choice=choice)
    assert request["toolConfig"]["functionCallingConfig"] == config


def test_assistant_tool_calls_and_tool_results_become_function_call_and_response_parts():
    request = to_gemini([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_b", "content": "14:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 21}'},
    ], tools=[WEATHER_TOOL])
    assert request["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"name": "get_time", "args": {"city": "Rome"}}}]},
        # Both results in one user turn; the name comes from the call's id, JSON content is parsed.
        {"role": "user", "parts": [{"functionResponse": {"name": "get_time", "response": {"content": "14:00"}}},
                                   {"functionResponse": {"name": "get_weather",
                                                         "response": {"content": {"temp_c": 21}}}}]}]


def test_a_tool_result_for_an_unknown_call_id_is_a_value_error():
    with pytest.raises(ValueError, match="unknown tool_call_id 'call_zz'"):
        to_gemini([{"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "call_zz", "content": "x"}])


def test_tool_call_arguments_that_are_not_json_are_a_value_error():
    with pytest.raises(ValueError, match="not JSON"):
        to_gemini([{"role": "user", "content": "Hi"}, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{city: Paris"}}]}])


def test_a_conversation_with_only_a_system_message_is_a_value_error():
    with pytest.raises(ValueError, match="at least one user or assistant message"):
        to_gemini([{"role": "system", "content": "Be brief."}])


# --- Gemini response -> OpenAI -------------------------------------------------------------------

def test_text_answer_becomes_a_chat_completion_with_usage():
    data = gemini_answer([{"text": "Hello "}, {"text": "world"}],
                         usage={"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 14},
                         modelVersion="gemini-2.0-flash-001", responseId="abc123")
    body = gemini_response_to_openai(data, "gemini-2.0-flash")
    assert body["object"] == "chat.completion" and body["id"] == "chatcmpl-abc123"
    assert body["model"] == "gemini-2.0-flash-001"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello world", "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
                             "prompt_tokens_details": {"cached_tokens": 0}}


def test_model_falls_back_to_the_requested_one_and_usage_is_absent_without_metadata():
    body = gemini_response_to_openai(gemini_answer([{"text": "Hi"}]), "gemini-2.0-flash")
    assert body["model"] == "gemini-2.0-flash"
    assert "usage" not in body


def test_cached_and_thinking_tokens_are_counted_in_openai_terms():
    meta = {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 5,
            "thoughtsTokenCount": 20, "totalTokenCount": 125}
    assert gemini_usage(meta) == TokenUsage(prompt_tokens=100, completion_tokens=25, cached_tokens=60)
    usage = gemini_response_to_openai(gemini_answer([{"text": "Hi"}], usage=meta), "m")["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 60}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 20}
    assert usage["total_tokens"] == 125


@pytest.mark.parametrize("meta", [{"promptTokenCount": -1}, {"promptTokenCount": "12"}], ids=["negative", "string"])
def test_usage_that_is_not_a_count_is_a_value_error(meta):
    with pytest.raises(ValueError):
        gemini_usage(meta)


def test_function_call_parts_become_tool_calls():
    data = gemini_answer([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                          {"functionCall": {"name": "get_time", "args": {}}}])
    message = gemini_response_to_openai(data, "m")["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    assert gemini_response_to_openai(data, "m")["choices"][0]["finish_reason"] == "tool_calls"


def test_thought_signatures_travel_with_tool_calls_both_ways():
    # Thinking models refuse a conversation whose function call lost its signature.
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmVk"}
    message = gemini_response_to_openai(gemini_answer([call]), "m")["choices"][0]["message"]
    (tool_call,) = message["tool_calls"]
    assert tool_call["extra_content"] == {"google": {"thought_signature": "c2lnbmVk"}}
    request = to_gemini([{"role": "user", "content": "Weather?"}, message,
                         {"role": "tool", "tool_call_id": tool_call["id"], "content": "sunny"}])
    assert request["contents"][1] == {"role": "model", "parts": [call]}


@pytest.mark.parametrize("reason, expected", [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                                              ("RECITATION", "content_filter"), ("OTHER", "stop")])
def test_finish_reasons(reason, expected):
    body = gemini_response_to_openai(gemini_answer([{"text": "x"}], finish=reason), "m")
    assert body["choices"][0]["finish_reason"] == expected


def test_a_blocked_prompt_is_an_empty_filtered_answer_and_no_candidates_at_all_is_an_error():
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    choice = gemini_response_to_openai(blocked, "m")["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("", "content_filter")
    with pytest.raises(ValueError, match="no candidates"):
        gemini_response_to_openai({"usageMetadata": {"promptTokenCount": 3}}, "m")


def test_thought_summaries_are_not_part_of_the_answer():
    data = gemini_answer([{"text": "Let me think...", "thought": True}, {"text": "42"}])
    assert gemini_response_to_openai(data, "m")["choices"][0]["message"]["content"] == "42"


# --- Gemini stream -> OpenAI chunks --------------------------------------------------------------

def stream_events(words: list[str], usage_every_chunk: bool = True) -> list[dict]:
    """Gemini's stream: one word per event, cumulative usage, finishReason on the last one."""
    events = []
    for n, word in enumerate(words, start=1):
        event = {"candidates": [{"content": {"role": "model", "parts": [{"text": word}]}, "index": 0}],
                 "modelVersion": "gemini-2.0-flash-001", "responseId": "r1"}
        if n == len(words):
            event["candidates"][0]["finishReason"] = "STOP"
        if usage_every_chunk or n == len(words):
            event["usageMetadata"] = {"promptTokenCount": 7, "candidatesTokenCount": n, "totalTokenCount": 7 + n}
        events.append(event)
    return events


def translate(events: list[dict]) -> tuple[GeminiToOpenAIStream, list[dict]]:
    translator = GeminiToOpenAIStream("gemini-2.0-flash")
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    return translator, chunks + translator.finish()


def test_stream_starts_with_a_role_chunk_then_content_then_finish_then_usage():
    translator, chunks = translate(stream_events(["Hello ", "there ", "friend"]))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] == ["Hello ", "there ", "friend"]
    assert chunks[4]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert chunks[5]["choices"] == []
    assert chunks[5]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                                  "prompt_tokens_details": {"cached_tokens": 0}}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert {(c["id"], c["model"]) for c in chunks} == {("chatcmpl-r1", "gemini-2.0-flash-001")}
    assert len(chunks) == 6


def test_stream_usage_is_the_last_reported_not_a_sum():
    translator, chunks = translate(stream_events(["a ", "b ", "c ", "d"]))
    assert translator.usage == TokenUsage(7, 4, 0)
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_stream_without_usage_sends_no_usage_chunk():
    events = stream_events(["a ", "b"])
    for event in events:
        del event["usageMetadata"]
    translator, chunks = translate(events)
    assert translator.usage is None
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not [c for c in chunks if "usage" in c]


def test_streamed_function_calls_become_indexed_tool_call_deltas():
    events = [{"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_time", "args": {"city": "Rome"}}}]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14}}]
    translator, chunks = translate(events)
    deltas = [c["choices"][0]["delta"]["tool_calls"] for c in chunks if c["choices"] and
              "tool_calls" in c["choices"][0]["delta"]]
    assert deltas == [
        [{"index": 0, "id": "call_0", "type": "function",
          "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}],
        [{"index": 1, "id": "call_1", "type": "function",
          "function": {"name": "get_time", "arguments": json.dumps({"city": "Rome"})}}]]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert translator.finish_reason == "STOP"


def test_stream_records_that_no_finish_reason_arrived_yet():
    translator = GeminiToOpenAIStream("m")
    translator.feed(stream_events(["a ", "b"])[0])
    assert translator.finish_reason is None


def test_a_usage_only_stream_event_adds_no_content():
    translator = GeminiToOpenAIStream("m")
    translator.feed(stream_events(["a"])[0])
    assert translator.feed({"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2}}) == []
    assert translator.usage == TokenUsage(7, 2, 0)


def test_googles_error_envelope_names_the_status_and_carries_reason_and_delay():
    assert google_error(404, "no such model") == {"error": {"code": 404, "message": "no such model",
                                                            "status": "NOT_FOUND"}}
    busy = google_error(429, "slow down", reason="rate_limited", retry_after=7)["error"]
    assert busy["status"] == "RESOURCE_EXHAUSTED"
    assert busy["details"] == [{"@type": ERROR_INFO, "reason": "RATE_LIMITED", "domain": "waybill"},
                               {"@type": RETRY_INFO, "retryDelay": "7s"}]
    assert google_error(502, "cut")["error"]["status"] == "UNAVAILABLE"
    assert google_error(418, "odd")["error"]["status"] == "FAILED_PRECONDITION"
