"""Answers fit OpenAI's published schema (openai/openai-openapi), whichever provider stands behind them."""
from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import openai
import pytest
import requests
from jsonschema import Draft202012Validator

from tests.proxy.conftest import SPARSE_ANSWER

# The part of OpenAI's OpenAPI description these answers need (MIT, see its license field).
SCHEMAS = json.loads((Path(__file__).resolve().parent.parent / "openai-schemas.json").read_text())
QUESTION = [{"role": "user", "content": "Describe the route"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
# (model, channels to fail first, channel that serves, its provider)
ROUTES = [
    ("gpt-4o-mini", [], "primary", "openai"),
    ("gpt-4o-mini", ["primary"], "backup", "openai-compatible"),
    ("claude-sonnet-4-6", [], "claude-direct", "anthropic"),
    ("claude-sonnet-4-6", ["claude-direct"], "relay-c", "openai-compatible"),
    ("gemini-2.5-flash", [], "gemini-direct", "gemini"),
    ("sparse-chat", [], "sparse", "openai-compatible (sparse)"),
]
EMBEDDINGS = [("text-embedding-3-small", [], "primary"), ("text-embedding-3-small", ["primary"], "backup"),
              ("sparse-embed", [], "sparse")]


def assert_fits(instance: object, schema: str) -> None:
    """The instance validates against components/schemas/<schema>, every error listed if not."""
    validator = Draft202012Validator({**SCHEMAS, "$ref": f"#/components/schemas/{schema}"})
    errors = [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
              for error in validator.iter_errors(instance)]
    assert not errors, f"{schema}:\n" + "\n".join(errors[:20]) + f"\n{json.dumps(instance)[:1500]}"


def _route(world, failing: list[str]) -> None:
    for channel in failing:
        world.sim.set_fault(channel, status=503)


def _stream_chunks(openai_client: openai.OpenAI, **request) -> list[dict]:
    """Every data line of a stream, as JSON, read raw so nothing the SDK tolerates goes unseen."""
    with openai_client.chat.completions.with_streaming_response.create(stream=True, **request) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_the_schema_file_keeps_its_license():
    assert SCHEMAS["license"].startswith("The MIT License")
    assert "Copyright (c) OpenAI" in SCHEMAS["license"]


@pytest.mark.parametrize("model,failing,channel,provider", ROUTES, ids=[r[3] + "-" + r[2] for r in ROUTES])
def test_chat_answers_fit_the_schema(openai_client, sparse_relay, model, failing, channel, provider):
    _route(sparse_relay, failing)
    raw = openai_client.chat.completions.with_raw_response.create(model=model, messages=QUESTION)
    assert raw.headers["X-Waybill-Route"] == channel
    body = raw.http_response.json()
    assert_fits(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"], "the answer's text is there"

    chunks = _stream_chunks(openai_client, model=model, messages=QUESTION, stream_options={"include_usage": True})
    for chunk in chunks:
        assert_fits(chunk, "CreateChatCompletionStreamResponse")
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert len({(c["id"], c["created"]) for c in chunks}) == 1, "every chunk of a stream has its id and created"


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gemini-2.5-flash"])
def test_translated_tool_calls_fit_the_schema(openai_client, providers, model):
    ask = {"model": model, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER_TOOL]}
    body = openai_client.chat.completions.with_raw_response.create(**ask).http_response.json()
    assert_fits(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    for chunk in _stream_chunks(openai_client, **ask):
        assert_fits(chunk, "CreateChatCompletionStreamResponse")


def test_a_relay_answering_in_content_parts_is_served_as_a_string(openai_client, sparse_relay):
    completion = openai_client.chat.completions.create(model="sparse-chat", messages=QUESTION)
    assert completion.choices[0].message.content == SPARSE_ANSWER
    assert completion.choices[0].finish_reason == "stop"
    stream = openai_client.chat.completions.create(model="sparse-chat", messages=QUESTION, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == SPARSE_ANSWER


def _decoded(body: dict) -> dict:
    """A base64 answer read as the SDK reads it: OpenAI's description types only the float form."""
    data = [{**item, "embedding": list(struct.unpack(f"<{len(base64.b64decode(item['embedding'])) // 4}f",
                                                     base64.b64decode(item["embedding"])))}
            for item in body["data"]]
    return {**body, "data": data}


@pytest.mark.parametrize("model,failing,channel", EMBEDDINGS, ids=[e[2] for e in EMBEDDINGS])
def test_embeddings_fit_the_schema_as_floats_and_as_base64(openai_client, sparse_relay, model, failing, channel):
    _route(sparse_relay, failing)
    as_floats = openai_client.embeddings.with_raw_response.create(model=model, input="a route",
                                                                  encoding_format="float")
    assert as_floats.headers["X-Waybill-Route"] == channel
    floats = as_floats.http_response.json()
    assert_fits(floats, "CreateEmbeddingResponse")
    as_base64 = openai_client.embeddings.with_raw_response.create(model=model, input="a route",
                                                                  encoding_format="base64")
    encoded = as_base64.http_response.json()
    assert all(isinstance(item["embedding"], str) for item in encoded["data"])
    assert_fits(_decoded(encoded), "CreateEmbeddingResponse")
    assert _decoded(encoded)["data"][0]["embedding"] == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)
    if channel == "sparse":
        relayed = requests.post(f"{sparse_relay.sim.url('sparse')}/embeddings", timeout=10,
                                json={"model": "sparse-embedder", "input": "a route", "encoding_format": "float"})
        assert floats["data"][0]["embedding"] == relayed.json()["data"][0]["embedding"], "the relay's own vector"


def test_model_list_and_one_model_fit_the_schema(openai_client, sparse_relay):
    listed = openai_client.models.with_raw_response.list().http_response.json()
    assert_fits(listed, "ListModelsResponse")
    assert all(model["created"] > 1_700_000_000 for model in listed["data"]), "real creation times, not 0"
    for model in listed["data"]:
        assert_fits(openai_client.models.with_raw_response.retrieve(model["id"]).http_response.json(), "Model")


def _error_body(call) -> dict:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value.response.json()


def test_errors_fit_the_schema_for_every_provider(openai_client, providers, live_server):
    bodies = [
        _error_body(lambda: openai_client.chat.completions.create(model="no-such-model", messages=QUESTION)),
        _error_body(lambda: openai_client.models.retrieve("no-such-model")),
        _error_body(lambda: openai_client.get("/no-such-endpoint", cast_to=object)),
        _error_body(lambda: openai.OpenAI(base_url=f"{live_server}/v1", api_key="wb-nope", max_retries=0)
                    .models.list()),
        requests.get(f"{live_server}/v1/chat/completions", timeout=30).json(),
    ]
    for model, channel in (("claude-sonnet-4-6", "claude-direct"), ("gemini-2.5-flash", "gemini-direct"),
                           ("gpt-4o-mini", "primary")):
        providers.sim.set_fault(channel, status=400)  # the upstream's own 400, passed on
        bodies.append(_error_body(lambda: openai_client.chat.completions.create(model=model, messages=QUESTION)))
    for channel in ("claude-direct", "gemini-direct", "relay-c"):
        providers.sim.set_fault(channel, status=503)
    bodies.append(_error_body(lambda: openai_client.chat.completions.create(model="claude-sonnet-4-6",
                                                                            messages=QUESTION)))
    for body in bodies:
        assert_fits(body, "ErrorResponse")
    assert [body["error"]["code"] for body in bodies] == [
        "model_not_found", "model_not_found", "not_found", "invalid_api_key", "method_not_allowed",
        "invalid_request", "invalid_request", "invalid_request", "all_routes_failed"]


@pytest.mark.parametrize("channel,model", [("primary", "gpt-4o-mini"), ("claude-direct", "claude-sonnet-4-6"),
                                           ("gemini-direct", "gemini-2.5-flash")])
def test_a_stream_cut_mid_way_ends_with_an_error_that_fits_the_schema(openai_client, providers, channel, model):
    providers.sim.set_fault(channel, cut_after=3)
    with openai_client.chat.completions.with_streaming_response.create(model=model, messages=QUESTION,
                                                                       stream=True) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    *chunks, ending = events
    assert chunks, "some chunks came before the cut"
    for chunk in chunks:
        assert_fits(chunk, "CreateChatCompletionStreamResponse")
    assert_fits(ending, "ErrorResponse")
    assert ending["error"]["code"] == "upstream_interrupted"
