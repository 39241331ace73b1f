"""The simulator speaks OpenAI's real wire protocol (proved with the official SDK) and obeys its fault knobs."""
from __future__ import annotations

import base64
import json
import struct

import openai
import pytest
import requests

from app.simulator.server import set_remote_fault
from app.simulator.wire import count_tokens

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where does my request go?"}]
PROMPT_TEXT = "Be brief. Where does my request go?"


def sdk(sim, channel: str = "x", **options) -> openai.OpenAI:
    """The official OpenAI SDK pointed at one simulated channel, retries off."""
    return openai.OpenAI(base_url=sim.url(channel), api_key="sk-test", max_retries=0,
                         timeout=options.pop("timeout", 10), **options)


def chat(client: openai.OpenAI, **extra):
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **extra)


def collect(stream, limit: int = 200) -> list:
    """Read a stream's chunks, refusing to loop forever."""
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        assert len(chunks) <= limit, "stream never ended"
    return chunks


# --- the wire protocol, through the official SDK ---------------------------------------------------

def test_chat_completion_json_has_openai_shape_and_usage(sim):
    completion = chat(sdk(sim))
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert len(choice.message.content.split()) == 12
    assert completion.usage.prompt_tokens == count_tokens(PROMPT_TEXT) == 9
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 12
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_usage_is_deterministic_for_the_same_request(sim):
    client = sdk(sim)
    first, second = chat(client), chat(client)
    assert first.usage == second.usage
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id != second.id
    longer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "abcd" * 40}])
    assert longer.usage.prompt_tokens == 40


def test_max_tokens_shortens_the_reply_and_reports_length(sim):
    completion = chat(sdk(sim), max_tokens=5)
    assert completion.usage.completion_tokens == 5
    assert len(completion.choices[0].message.content.split()) == 5
    assert completion.choices[0].finish_reason == "length"


def test_chat_stream_without_include_usage_sends_no_usage_chunk(sim):
    whole = chat(sdk(sim))
    chunks = collect(chat(sdk(sim), stream=True))
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert all(len(chunk.choices) == 1 for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == whole.choices[0].message.content
    assert len({chunk.id for chunk in chunks}) == 1


def test_chat_stream_with_include_usage_ends_with_one_usage_chunk(sim):
    whole = chat(sdk(sim))
    chunks = collect(chat(sdk(sim), stream=True, stream_options={"include_usage": True}))
    with_usage = [chunk for chunk in chunks if chunk.usage is not None]
    assert with_usage == [chunks[-1]]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert sim.log("x")[-1]["body"]["stream_options"] == {"include_usage": True}


def test_stream_is_server_sent_events_ending_with_done(sim):
    response = requests.post(f"{sim.url('raw')}/chat/completions", timeout=10,
                             json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in events)
    assert events[-1] == "data: [DONE]"


def test_embeddings_floats_and_base64_decode_to_the_same_vectors(sim):
    client = sdk(sim)
    as_floats = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"],
                                         encoding_format="float")
    as_default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    log = sim.log("x")
    assert log[0]["body"]["encoding_format"] == "float"
    assert log[1]["body"]["encoding_format"] == "base64", "the SDK asks for base64 by default"
    assert [d.index for d in as_floats.data] == [0, 1]
    assert len(as_floats.data[0].embedding) == 8
    assert as_floats.data[0].embedding != as_floats.data[1].embedding
    for floats, decoded in zip(as_floats.data, as_default.data):
        assert decoded.embedding == pytest.approx(floats.embedding, abs=1e-6)
    assert as_floats.usage.prompt_tokens == count_tokens("alpha") + count_tokens("beta")
    assert as_floats.usage.total_tokens == as_floats.usage.prompt_tokens
    assert as_floats.model == "text-embedding-3-small"


def test_base64_embeddings_are_little_endian_float32_on_the_wire(sim):
    body = {"model": "text-embedding-3-small", "input": "alpha", "dimensions": 16}
    floats = requests.post(f"{sim.url('raw')}/embeddings", json={**body, "encoding_format": "float"}, timeout=10).json()
    packed = requests.post(f"{sim.url('raw')}/embeddings", json={**body, "encoding_format": "base64"}, timeout=10).json()
    encoded = packed["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = struct.unpack("<16f", base64.b64decode(encoded))
    assert list(decoded) == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)


def test_embeddings_are_deterministic(sim):
    client = sdk(sim)
    first = client.embeddings.create(model="text-embedding-3-small", input="same text", encoding_format="float")
    second = client.embeddings.create(model="text-embedding-3-small", input="same text", encoding_format="float")
    assert first.data[0].embedding == second.data[0].embedding
    assert first.usage == second.usage


def test_models_list(sim):
    models = list(sdk(sim, "acme").models.list())
    assert [m.id for m in models] == ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    assert {m.owned_by for m in models} == {"acme"}
    assert sim.log("acme")[0]["path"] == "/acme/v1/models"


def test_malformed_request_is_an_openai_400(sim):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(sim).chat.completions.create(model="", messages=MESSAGES)
    assert caught.value.status_code == 400
    assert caught.value.body["code"] == "invalid_request"
    assert sim.log("x") == [], "a rejected body is not an upstream call"


# --- the request log ------------------------------------------------------------------------------

def test_request_log_records_each_call_with_headers_and_body(sim):
    chat(sdk(sim, "x"))
    chat(sdk(sim, "x"), stream=True, stream_options={"include_usage": True}).close()
    sdk(sim, "y").embeddings.create(model="text-embedding-3-small", input="hi")
    x_log, y_log = sim.log("x"), sim.log("y")
    assert [(e["path"], e["model"], e["stream"]) for e in x_log] == [
        ("/x/v1/chat/completions", "gpt-4o-mini", False), ("/x/v1/chat/completions", "gpt-4o-mini", True)]
    assert [(e["path"], e["model"], e["stream"]) for e in y_log] == [("/y/v1/embeddings", "text-embedding-3-small", False)]
    assert len(sim.log()) == 3
    assert x_log[0]["body"]["messages"] == MESSAGES
    assert x_log[0]["at"] <= x_log[1]["at"]
    headers = x_log[0]["headers"]
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["user-agent"].startswith("OpenAI/Python")
    names = headers["names"].split(",")
    assert names == sorted(names)
    assert "x-stainless-lang" in names, "the log must show the SDK's own headers so tests can check they are dropped"


def test_reset_clears_log_and_faults(sim):
    sim.set_fault("x", status=503)
    with pytest.raises(openai.InternalServerError):
        chat(sdk(sim))
    sim.reset()
    assert sim.log() == []
    assert chat(sdk(sim)).choices


# --- fault knobs -----------------------------------------------------------------------------------

def test_status_fault_is_an_openai_error_envelope(sim):
    sim.set_fault("x", status=503)
    with pytest.raises(openai.InternalServerError) as caught:
        chat(sdk(sim))
    assert caught.value.status_code == 503
    assert caught.value.body == {"message": "simulated 503 from x", "type": "server_error", "code": "simulated_error"}
    assert "retry-after" not in caught.value.response.headers


def test_429_carries_retry_after(sim):
    sim.set_fault("x", status=429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(sdk(sim))
    assert caught.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize("status, error", [(401, openai.AuthenticationError), (403, openai.PermissionDeniedError),
                                           (404, openai.NotFoundError), (422, openai.UnprocessableEntityError)])
def test_status_fault_maps_to_the_sdk_error_for_that_status(sim, status, error):
    sim.set_fault("x", status=status)
    with pytest.raises(error):
        chat(sdk(sim))


def test_status_fault_applies_to_streams_and_embeddings(sim):
    sim.set_fault("x", status=502)
    with pytest.raises(openai.InternalServerError):
        chat(sdk(sim), stream=True)
    with pytest.raises(openai.InternalServerError):
        sdk(sim).embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(sim.log("x")) == 2


def test_fault_on_one_channel_leaves_others_healthy(sim):
    sim.set_fault("sick", status=500)
    with pytest.raises(openai.InternalServerError):
        chat(sdk(sim, "sick"))
    assert chat(sdk(sim, "well")).choices[0].message.content


def test_latency_beyond_the_client_timeout_times_out(sim):
    sim.set_fault("x", latency_ms=1500)
    with pytest.raises(openai.APITimeoutError):
        chat(sdk(sim, timeout=0.3))
    assert len(sim.log("x")) == 1


def test_small_latency_still_answers(sim):
    sim.set_fault("x", latency_ms=50)
    assert chat(sdk(sim)).usage.completion_tokens == 12


def test_drop_closes_the_connection_without_an_answer(sim):
    sim.set_fault("x", drop=True)
    with pytest.raises(openai.APIConnectionError) as caught:
        chat(sdk(sim))
    assert not isinstance(caught.value, openai.APITimeoutError)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{sim.url('x')}/chat/completions", json={"model": "m", "messages": MESSAGES}, timeout=10)


def test_cut_after_breaks_the_stream_mid_iteration(sim):
    sim.set_fault("x", cut_after=2)
    stream = chat(sdk(sim), stream=True)  # the headers and first chunks arrive fine
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
            assert len(received) < 50
    assert received[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in received[1:]] == ["Simulated ", "reply "]


def test_cut_after_on_a_json_request_drops_it(sim):
    sim.set_fault("x", cut_after=2)
    with pytest.raises(openai.APIConnectionError):
        chat(sdk(sim))


def test_served_model_replaces_the_reported_model(sim):
    sim.set_fault("x", served_model="gpt-4o-mini-2099-01-01")
    client = sdk(sim)
    assert chat(client).model == "gpt-4o-mini-2099-01-01"
    chunks = collect(chat(client, stream=True))
    assert {c.model for c in chunks} == {"gpt-4o-mini-2099-01-01"}
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert embedding.model == "gpt-4o-mini-2099-01-01"
    assert [e["model"] for e in sim.log("x")] == ["gpt-4o-mini", "gpt-4o-mini", "text-embedding-3-small"]


def test_omit_usage_sends_no_usage_anywhere(sim):
    sim.set_fault("x", omit_usage=True)
    client = sdk(sim)
    assert chat(client).usage is None
    chunks = collect(chat(client, stream=True, stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    raw = requests.post(f"{sim.url('x')}/embeddings", json={"model": "e", "input": "hi"}, timeout=10).json()
    assert "usage" not in raw and raw["data"]


def test_bad_body_answers_200_with_something_that_is_not_json_or_sse(sim):
    sim.set_fault("x", bad_body=True)
    url = f"{sim.url('x')}/chat/completions"
    plain = requests.post(url, json={"model": "m", "messages": MESSAGES}, timeout=10)
    assert plain.status_code == 200
    assert plain.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        plain.json()
    streamed = requests.post(url, json={"model": "m", "messages": MESSAGES, "stream": True}, timeout=10)
    assert streamed.status_code == 200
    assert "data:" not in streamed.text
    with pytest.raises((ValueError, openai.APIError)):
        chat(sdk(sim))


def test_reply_tokens_and_cached_tokens_shape_the_usage(sim):
    sim.set_fault("x", reply_tokens=3, cached_tokens=4)
    completion = chat(sdk(sim))
    assert completion.usage.completion_tokens == 3
    assert completion.usage.prompt_tokens_details.cached_tokens == 4
    assert completion.choices[0].finish_reason == "stop"


def test_loose_answers_like_a_loose_openai_compatible_relay(sim):
    sim.set_fault("x", loose=True, reply_tokens=2)
    ask = {"model": "gpt-4o-mini", "messages": MESSAGES}
    words = [{"type": "text", "text": "Simulated "}, {"type": "text", "text": "reply "}]
    usage = {"prompt_tokens": 9, "completion_tokens": 2}
    answer = requests.post(f"{sim.url('x')}/chat/completions", json=ask, timeout=10).json()
    assert answer == {"id": answer["id"], "model": "gpt-4o-mini", "system_fingerprint": None,
                      "service_tier": "on_demand", "usage": usage,
                      "choices": [{"message": {"role": "assistant", "content": words}, "finish_reason": "eos"}]}

    streamed = requests.post(f"{sim.url('x')}/chat/completions", json={**ask, "stream": True}, timeout=10)
    *events, done = [block for block in streamed.text.split("\n\n") if block]
    assert done == "data: [DONE]", "stream_options did not ask for usage, yet it comes"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events]
    stream_id = chunks[0]["id"]
    assert chunks == [
        {"id": stream_id, "model": "gpt-4o-mini", "choices": [{"delta": {"content": [words[0]]}}]},
        {"id": stream_id, "model": "gpt-4o-mini", "choices": [{"delta": {"content": [words[1]]}}]},
        {"id": stream_id, "choices": [{"delta": {}, "finish_reason": "stop"}]},
        {"id": stream_id, "choices": [], "usage": usage}]

    embedded = requests.post(f"{sim.url('x')}/embeddings", timeout=10, json={
        "model": "text-embedding-3-small", "input": ["alpha", "beta"], "encoding_format": "float"}).json()
    vectors = [item.pop("embedding") for item in embedded["data"]]
    assert embedded == {"model": "text-embedding-3-small", "data": [{}, {}],
                        "usage": {"prompt_tokens": count_tokens("alpha") + count_tokens("beta")}}
    assert [len(vector) for vector in vectors] == [8, 8]


def test_times_heals_after_n_requests(sim):
    sim.set_fault("x", status=503, times=2)
    client = sdk(sim)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(client)
    assert chat(client).choices[0].message.content
    assert chat(client).choices[0].message.content
    assert len(sim.log("x")) == 4


def test_a_fault_without_times_persists(sim):
    sim.set_fault("x", status=500)
    client = sdk(sim)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            chat(client)


def test_unknown_fault_knob_is_refused(sim):
    with pytest.raises(ValueError):
        sim.set_fault("x", explode=True)
    response = requests.put(f"{sim.root}/_control/faults/x", json={"explode": True}, timeout=10)
    assert response.status_code == 400
    assert "explode" in response.json()["error"]


def test_control_api_sets_faults_and_reads_the_log_over_http(sim):
    set_remote_fault(sim.root, "remote", status=429, retry_after=3, times=1)
    with pytest.raises(openai.RateLimitError):
        chat(sdk(sim, "remote"))
    assert chat(sdk(sim, "remote")).choices
    log = requests.get(f"{sim.root}/_control/log", params={"channel": "remote"}, timeout=10).json()
    assert [e["path"] for e in log] == ["/remote/v1/chat/completions"] * 2
    assert requests.delete(f"{sim.root}/_control/faults", timeout=10).json() == {"ok": True}
    assert sim.log() == []
    assert requests.get(f"{sim.root}/_control/health", timeout=10).json() == {"ok": True}
