"""Inbound translation, for google-genai clients: generateContent requests to chat bodies, and the answers back."""
from __future__ import annotations

import json

import pytest

from app.gateway.catalog import ListedModel
from app.providers.gemini_format import gemini_response_to_openai, openai_request_to_gemini
from app.proxy.clients.gemini import (
    OpenAIToGeminiStream, gemini_model, gemini_request_to_openai, openai_response_to_gemini, usage_metadata,
)
from tests.proxy.clients.openai_chunks import openai_chunk

WEATHER_DECLARATION = {"name": "get_weather", "description": "Weather for a city",
                       "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": True}},
                                      "required": ["city"]}}
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": ["string", "null"]}}, "required": ["city"]}}}


def to_chat(contents: list, stream: bool = False, **extra) -> dict:
    return gemini_request_to_openai({"contents": contents, **extra}, "gemini-x", stream)


def user(*parts: dict) -> dict:
    return {"role": "user", "parts": list(parts)}


# --- request -------------------------------------------------------------------------------------

def test_contents_system_and_generation_config_become_a_chat_body():
    body = to_chat([user({"text": "Hi"}), {"role": "model", "parts": [{"text": "Hello"}]},
                    {"parts": [{"text": "Again"}]}],
                   systemInstruction={"parts": [{"text": "Be "}, {"text": "brief."}]},
                   generationConfig={"temperature": 0.3, "topP": 0.9, "topK": 40, "maxOutputTokens": 64,
                                     "stopSequences": ["END"], "seed": 7, "candidateCount": 1})
    assert body == {"model": "gemini-x", "temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "stop": ["END"], "seed": 7,
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Again"}]}


def test_a_stream_asks_for_the_usage_openai_chunk():
    body = to_chat([user({"text": "Hi"})], stream=True)
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


def test_inline_images_audio_and_linked_images_become_content_parts():
    body = to_chat([user({"text": "What is this?"}, {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                         {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
                         {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}})])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]


def test_function_calls_and_responses_become_tool_calls_and_tool_messages_with_matching_ids():
    body = to_chat([user({"text": "Weather in Paris and Rome?"}),
                    {"role": "model", "parts": [
                        {"text": "thinking...", "thought": True},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig"},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
                    user({"functionResponse": {"name": "get_weather", "response": {"content": "18 C"}}},
                         {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}})],
                   tools=[{"functionDeclarations": [WEATHER_DECLARATION]}],
                   toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    assistant = body["messages"][1]
    assert assistant["content"] is None
    assert [(c["id"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]] == [
        ("call_0", {"city": "Paris"}), ("call_1", {"city": "Rome"})]
    assert assistant["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "sig"}}
    assert body["messages"][2:] == [{"role": "tool", "tool_call_id": "call_0", "content": "18 C"},
                                    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}]
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_a_function_response_naming_its_call_id_answers_that_call():
    body = to_chat([{"role": "model", "parts": [{"functionCall": {"id": "a", "name": "f", "args": {}}},
                                                {"functionCall": {"id": "b", "name": "f", "args": {}}}]},
                    user({"functionResponse": {"id": "b", "name": "f", "response": {"content": "B"}}})])
    assert body["messages"][1] == {"role": "tool", "tool_call_id": "b", "content": "B"}


@pytest.mark.parametrize("mode, choice", [("AUTO", "auto"), ("NONE", "none"), ("ANY", "required")])
def test_function_calling_modes(mode, choice):
    body = to_chat([user({"text": "x"})], toolConfig={"functionCallingConfig": {"mode": mode}})
    assert body["tool_choice"] == choice


def test_json_output_becomes_a_response_format():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    with_schema = to_chat([user({"text": "x"})], generationConfig={"responseMimeType": "application/json",
                                                                   "responseJsonSchema": schema})
    assert with_schema["response_format"] == {"type": "json_schema", "json_schema": {"name": "response",
                                                                                     "schema": schema}}
    bare = to_chat([user({"text": "x"})], generationConfig={"responseMimeType": "application/json"})
    assert bare["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("body, words", [
    ({"contents": []}, "contents"), ("text", "JSON object"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "role"),
    ({"contents": [user({"executableCode": {"code": "1"}})]}, "executableCode"),
    ({"contents": [user({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}})]}, "application/pdf"),
    ({"contents": [user({"functionResponse": {"name": "nobody", "response": {}}})]}, "answers no functionCall"),
    ({"contents": [user({"text": "x"})], "tools": [{"googleSearch": {}}]}, "googleSearch"),
    ({"contents": [user({"text": "x"})], "systemInstruction": {"parts": [{"inlineData": {}}]}}, "only text"),
])
def test_requests_a_chat_body_cannot_carry_raise_value_error(body, words):
    with pytest.raises(ValueError, match=words):
        gemini_request_to_openai(body, "m", False)


# --- response ------------------------------------------------------------------------------------

def completion(message: dict, finish: str = "stop", usage: dict | None = None) -> dict:
    body = {"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, **message},
                         "logprobs": None, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return body


def test_a_completion_becomes_a_generate_content_response():
    answer = openai_response_to_gemini(completion({"content": "Hello"}, "length", {
        "prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17, "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2}}), "gemini-x")
    assert answer == {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "index": 0,
                                      "finishReason": "MAX_TOKENS"}],
                      "modelVersion": "gemini-x", "responseId": "abc",
                      "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 2,
                                        "cachedContentTokenCount": 4, "totalTokenCount": 17}}


def test_tool_calls_become_whole_function_call_parts():
    answer = openai_response_to_gemini(completion({"content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
         "extra_content": {"google": {"thought_signature": "sig"}}}]}, "tool_calls"), "g")
    assert answer["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"id": "call_9", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig"}]
    assert answer["candidates"][0]["finishReason"] == "STOP"


def test_usage_round_trips_through_both_gemini_translations():
    meta = {"promptTokenCount": 12, "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "cachedContentTokenCount": 2,
            "totalTokenCount": 20}
    outbound = gemini_response_to_openai({"candidates": [{"content": {"parts": [{"text": "x"}]},
                                                          "finishReason": "STOP"}], "usageMetadata": meta}, "g")
    assert usage_metadata(outbound["usage"]) == meta


def test_a_request_round_trips_through_both_gemini_translations():
    request = {"contents": [user({"text": "Weather?"}),
                            {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                                          "args": {"city": "Oslo"}},
                                                         "thoughtSignature": "sig"}]},
                            user({"functionResponse": {"name": "get_weather", "response": {"content": "cold"}}})],
               "systemInstruction": {"parts": [{"text": "Be brief."}]},
               "generationConfig": {"temperature": 0.5, "maxOutputTokens": 20}}
    back = openai_request_to_gemini(gemini_request_to_openai(request, "g", False))
    assert back["contents"] == request["contents"]
    assert back["systemInstruction"] == request["systemInstruction"]
    assert back["generationConfig"] == request["generationConfig"]


# --- stream --------------------------------------------------------------------------------------

def test_text_chunks_stream_as_they_come_and_the_last_response_carries_finish_and_usage():
    translator = OpenAIToGeminiStream("gemini-x")
    responses = []
    for piece in [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "Hel"}),
                  openai_chunk({"content": "lo"}), openai_chunk({}, "stop"),
                  openai_chunk(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})]:
        responses += translator.feed(piece)
    responses += translator.finish()
    assert [r["candidates"][0]["content"]["parts"] for r in responses] == [[{"text": "Hel"}], [{"text": "lo"}],
                                                                           [{"text": ""}]]
    assert all((r["modelVersion"], r["responseId"]) == ("gemini-x", "s") for r in responses)
    assert "finishReason" not in responses[0]["candidates"][0]
    assert responses[-1]["candidates"][0]["finishReason"] == "STOP"
    assert responses[-1]["usageMetadata"] == {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}


def test_tool_call_pieces_are_joined_into_whole_function_calls_at_the_end():
    translator = OpenAIToGeminiStream("g")
    for piece in [openai_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                         "function": {"name": "get_weather", "arguments": ""}}]}),
                  openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                  openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
                  openai_chunk({"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "get_time",
                                                                                   "arguments": "{}"}}]}),
                  openai_chunk({}, "tool_calls")]:
        assert translator.feed(piece) == []
    [last] = translator.finish()
    assert last["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"id": "call_2", "name": "get_time", "args": {}}}]


def test_model_resources_name_the_methods_a_model_offers():
    chat = ListedModel("gemini-x", "Gemini X", "gemini", "chat", 1000, 100, 1_750_000_000)
    assert gemini_model(chat) == {"name": "models/gemini-x", "baseModelId": "gemini-x", "version": "",
                                  "displayName": "Gemini X", "inputTokenLimit": 1000, "outputTokenLimit": 100,
                                  "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]}
    embedder = ListedModel("embed", "Embed", "openai", "embedding", 8191, 0, 1_750_000_000)
    assert gemini_model(embedder)["supportedGenerationMethods"] == []
