"""Bad input never costs money: malformed shapes are a 400 before any hold, on every API and provider."""
from __future__ import annotations

import json

import pytest
import requests

from app.gateway.validation import FieldError, check_structure
from app.providers.anthropic_format import openai_request_to_anthropic
from app.providers.gemini_format import openai_request_to_gemini
from tests.conftest import assert_ledger_green

ASK = [{"role": "user", "content": "Hello"}]
CLAUDE, GEMINI, GPT = "claude-sonnet-4-6", "gemini-2.5-flash", "gpt-4o-mini"


def _nested(depth: int) -> object:
    """A JSON value nested `depth` levels deep."""
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _call_with_id(call_id: object) -> list[dict]:
    """A conversation whose tool call (and its answer) carries this id."""
    call = {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    return [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]


def _post(live_server: str, key: str, path: str, body: object) -> requests.Response:
    """POST a body serialised as Python does (NaN and Infinity included), as a hostile client may."""
    return requests.post(f"{live_server}{path}", data=json.dumps(body).encode(), timeout=30,
                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def _assert_refused_for_free(world, live_server: str, response: requests.Response, before: dict) -> None:
    """A 400 in JSON with a rejected receipt: no upstream call, no hold, no wallet change."""
    assert response.status_code == 400, response.text[:500]
    assert isinstance(response.json(), dict)
    assert world.balances() == before
    assert world.sim.log() == []
    receipt_id = response.headers["X-Waybill-Receipt"]
    receipt = requests.get(f"{live_server}/v1/receipts/{receipt_id}", timeout=30,
                           headers={"Authorization": f"Bearer {world.key}"}).json()
    assert (receipt["status"], receipt["failure_stage"], receipt["charge_usd"]) == (
        "rejected", "before_routing", "0.000000")
    assert_ledger_green()


CHAT_CASES = {
    "claude stop is a number": {"model": CLAUDE, "messages": ASK, "stop": 5},
    "claude tool_calls is a number": {"model": CLAUDE, "messages": [
        *ASK, {"role": "assistant", "content": "x", "tool_calls": 5}, {"role": "user", "content": "y"}]},
    "gemini tool_calls is a number": {"model": GEMINI, "messages": [
        *ASK, {"role": "assistant", "content": "x", "tool_calls": 5}, {"role": "user", "content": "y"}]},
    "gemini response_format is a string": {"model": GEMINI, "messages": ASK, "response_format": "text"},
    "claude tool call id is a list": {"model": CLAUDE, "messages": _call_with_id(["call_1"])},
    "gemini tool call id is a list": {"model": GEMINI, "messages": _call_with_id(["call_1"])},
    "max_tokens is 2**63": {"model": GPT, "messages": ASK, "max_tokens": 2**63},
    "max_tokens is 10**30": {"model": CLAUDE, "messages": ASK, "max_tokens": 10**30},
    "max_completion_tokens is 1e30": {"model": GEMINI, "messages": ASK, "max_completion_tokens": 1e30},
    "seed past 64 bits": {"model": GEMINI, "messages": ASK, "seed": 2**64},
    "temperature is NaN": {"model": GEMINI, "messages": ASK, "temperature": float("nan")},
    "top_p is infinite": {"model": CLAUDE, "messages": ASK, "top_p": float("inf")},
    "a NUL byte in content": {"model": GPT, "messages": [{"role": "user", "content": "a\x00b"}]},
    "a NUL byte in a key": {"model": GPT, "messages": ASK, "metadata": {"k\x00": "v"}},
    "nesting past the limit": {"model": GPT, "messages": ASK, "tools": [
        {"type": "function", "function": {"name": "deep", "parameters": _nested(100)}}]},
    "nesting a parser survives but a recursive walk does not": {"model": GEMINI, "messages": ASK,
                                                               "extra": _nested(700)},
    "n is zero": {"model": GPT, "messages": ASK, "n": 0},
    "n is a million": {"model": GPT, "messages": ASK, "n": 10**6},
    "metadata is a list": {"model": GPT, "messages": ASK, "metadata": ["x"]},
    "a tool that is not a function tool": {"model": CLAUDE, "messages": ASK, "tools": [{"type": "function"}]},
    "tool_choice names no function": {"model": GEMINI, "messages": ASK, "tool_choice": {"type": "function"}},
    "logit_bias values are strings": {"model": GPT, "messages": ASK, "logit_bias": {"50256": "x"}},
    "five stop sequences": {"model": GPT, "messages": ASK, "stop": ["a", "b", "c", "d", "e"]},
}


@pytest.mark.parametrize("body", CHAT_CASES.values(), ids=CHAT_CASES.keys())
def test_malformed_chat_bodies_are_refused_before_any_hold(providers, live_server, body):
    before = providers.balances()
    response = _post(live_server, providers.key, "/v1/chat/completions", body)
    _assert_refused_for_free(providers, live_server, response, before)


EMBEDDING_CASES = {
    "dimensions is a string": {"dimensions": "abc"},
    "dimensions is zero": {"dimensions": 0},
    "dimensions past 64 bits": {"dimensions": 2**70},
    "dimensions is 1e30": {"dimensions": 1e30},
    "encoding_format is unknown": {"encoding_format": "int8"},
    "user is a number": {"user": 7},
}


@pytest.mark.parametrize("extra", EMBEDDING_CASES.values(), ids=EMBEDDING_CASES.keys())
def test_malformed_embedding_bodies_are_refused_before_any_hold(providers, live_server, extra):
    before = providers.balances()
    body = {"model": "text-embedding-3-small", "input": "hello", **extra}
    response = _post(live_server, providers.key, "/v1/embeddings", body)
    _assert_refused_for_free(providers, live_server, response, before)


def test_one_key_sending_bad_dimensions_cannot_open_a_circuit(providers, live_server, openai_client):
    for _ in range(4):
        response = _post(live_server, providers.key, "/v1/embeddings",
                         {"model": "text-embedding-3-small", "input": "x", "dimensions": "abc"})
        assert response.status_code == 400
    served = openai_client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x")
    assert served.headers["X-Waybill-Route"] == "primary"


MESSAGES_CASES = {
    "stop_sequences is a number": {"stop_sequences": 5},
    "metadata is a string": {"metadata": "u-1"},
    "tools is a number": {"tools": 5},
    "a text block's text is a number": {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    "a tool_use id is a list": {"messages": [*ASK, {"role": "assistant", "content": [
        {"type": "tool_use", "id": ["t"], "name": "f", "input": {}}]}]},
    "max_tokens is 2**63": {"max_tokens": 2**63},
    "temperature is NaN": {"temperature": float("nan")},
    "a NUL byte in system": {"system": "be\x00brief"},
}


@pytest.mark.parametrize("extra", MESSAGES_CASES.values(), ids=MESSAGES_CASES.keys())
def test_malformed_messages_bodies_are_refused_before_any_hold(providers, live_server, extra):
    before = providers.balances()
    body = {"model": CLAUDE, "max_tokens": 50, "messages": ASK, **extra}
    response = _post(live_server, providers.key, "/v1/messages", body)
    assert response.json().get("type") == "error", response.text[:300]
    _assert_refused_for_free(providers, live_server, response, before)


USER_TURN = [{"role": "user", "parts": [{"text": "Hello"}]}]
GEMINI_CASES = {
    "tools is a number": {"tools": 5},
    "toolConfig is a string": {"toolConfig": "auto"},
    "stopSequences is a number": {"generationConfig": {"stopSequences": 5}},
    "maxOutputTokens past 64 bits": {"generationConfig": {"maxOutputTokens": 2**64}},
    "a functionCall id is a list": {"contents": [*USER_TURN, {"role": "model", "parts": [
        {"functionCall": {"id": ["c"], "name": "f", "args": {}}}]}]},
    "a functionCall name is a list": {"contents": [*USER_TURN, {"role": "model", "parts": [
        {"functionCall": {"name": ["f"], "args": {}}}]}]},
    "an inlineData mimeType is a number": {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": 5, "data": "AAAA"}}]}]},
    "a NUL byte in text": {"contents": [{"role": "user", "parts": [{"text": "a\x00"}]}]},
}


@pytest.mark.parametrize("extra", GEMINI_CASES.values(), ids=GEMINI_CASES.keys())
def test_malformed_generate_content_bodies_are_refused_before_any_hold(providers, live_server, extra):
    before = providers.balances()
    body = {"contents": USER_TURN, **extra}
    response = _post(live_server, providers.key, f"/v1beta/models/{GEMINI}:generateContent", body)
    assert response.json().get("error", {}).get("status") == "INVALID_ARGUMENT", response.text[:300]
    _assert_refused_for_free(providers, live_server, response, before)


def test_well_formed_bodies_with_every_validated_field_are_still_served(providers, openai_client):
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                             "parameters": {"type": "object", "properties": {}}, "strict": False}}
    for model in (GPT, CLAUDE, GEMINI):
        completion = openai_client.chat.completions.create(
            model=model, messages=ASK, stop=["END"], max_tokens=40, temperature=0.5, top_p=0.9, seed=7,
            user="u-1", tools=[tool], tool_choice="auto", response_format={"type": "text"},
            metadata={"purpose": "test"}, n=1)
        assert completion.choices[0].message.content
    vectors = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=16,
                                              encoding_format="float", user="u-1")
    assert len(vectors.data[0].embedding) == 16
    assert_ledger_green()


def test_a_nul_byte_in_the_gemini_path_model_is_refused(providers, live_server):
    before = providers.balances()
    response = _post(live_server, providers.key, "/v1beta/models/gemini%00x:generateContent", {"contents": USER_TURN})
    assert response.status_code == 400, response.text[:300]
    assert "NUL" in response.json()["error"]["message"]
    assert providers.balances() == before
    assert_ledger_green()


def test_a_nul_byte_in_the_chat_model_is_refused(providers, live_server):
    before = providers.balances()
    response = _post(live_server, providers.key, "/v1/chat/completions", {"model": "gpt\x00", "messages": ASK})
    assert response.status_code == 400, response.text[:300]
    assert providers.balances() == before
    assert_ledger_green()


def test_nesting_too_deep_for_the_json_parser_is_refused(providers, live_server):
    response = requests.post(f"{live_server}/v1/chat/completions", data=b"[" * 100_000 + b"]" * 100_000, timeout=30,
                             headers={"Authorization": f"Bearer {providers.key}", "Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:300]


def test_the_walk_bounds_depth_and_integers_exactly():
    check_structure({"a": _nested(63), "b": [2**63 - 1, -2**63]})  # 64 levels, with the body's own
    for too_far in ({"a": _nested(64)}, {"b": 2**63}, {"b": [-2**63 - 1]}, {"c": float("-inf")}, {"d\x00": 1}):
        with pytest.raises(FieldError):
            check_structure(too_far)


UNVALIDATED = {
    "stop is a number": {"stop": 5},
    "tools is a number": {"tools": 5},
    "a tool is a number": {"tools": [5]},
    "tool_choice's function is a number": {"tool_choice": {"type": "function", "function": 5}},
    "response_format is a string": {"response_format": "text"},
    "tool_calls is a number": {"messages": [*ASK, {"role": "assistant", "tool_calls": 5}]},
    "a tool call id is a list": {"messages": _call_with_id(["call_1"])},
    "a text part's text is a number": {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    "input_audio is a string": {"messages": [{"role": "user", "content": [{"type": "input_audio",
                                                                          "input_audio": "x"}]}]},
}


@pytest.mark.parametrize("change", UNVALIDATED.values(), ids=UNVALIDATED.keys())
@pytest.mark.parametrize("translate", [lambda body: openai_request_to_anthropic(body, "claude-x", 100),
                                       openai_request_to_gemini], ids=["anthropic", "gemini"])
def test_channel_translation_refuses_shapes_that_skipped_validation_with_value_error(translate, change):
    try:
        translate({"model": "m", "messages": ASK, **change})
    except ValueError:
        pass  # the adapters turn it into a 400 with the hold voided; any other error would be a crash
