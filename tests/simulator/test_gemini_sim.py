"""The simulator speaks Gemini's real wire protocol, proved with Google's official google-genai SDK."""
from __future__ import annotations

import pytest
import requests
from google import genai
from google.genai import types

from app.simulator.wire import count_tokens, reply_words

KEY = "AIza-test-key"
MODEL = "gemini-2.0-flash"
PROMPT = "Where does my request go?"
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Current weather in a city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))])


def sdk(sim, channel: str = "chan", timeout_ms: int = 10_000) -> genai.Client:
    """The official SDK pointed at one simulated channel; v1beta is the version Waybill's adapter speaks."""
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(
        base_url=f"{sim.root}/{channel}", api_version="v1beta", timeout=timeout_ms))


@pytest.fixture
def client(sim) -> genai.Client:
    """The SDK on channel "chan"; held by the test, since a Client closes its connection pool when collected."""
    with sdk(sim) as client:
        yield client


def collect(stream, limit: int = 200) -> list:
    """Read a stream's chunks, refusing to loop forever."""
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        assert len(chunks) <= limit, "stream never ended"
    return chunks


def url(sim, action: str = "generateContent", channel: str = "raw") -> str:
    return f"{sim.root}/{channel}/v1beta/models/{MODEL}:{action}"


BODY = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}


# --- the wire protocol, through the official SDK -------------------------------------------------

def test_generate_content_has_gemini_shape_and_usage(sim, client):
    response = client.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text == "".join(reply_words("chan", MODEL, 12))
    candidate = response.candidates[0]
    assert candidate.content.role == "model"
    assert candidate.finish_reason == types.FinishReason.STOP
    assert response.model_version == MODEL
    usage = response.usage_metadata
    assert usage.prompt_token_count == count_tokens(PROMPT)
    assert usage.candidates_token_count == 12
    assert usage.total_token_count == usage.prompt_token_count + 12
    assert usage.cached_content_token_count is None


def test_system_instruction_and_turns_count_towards_the_prompt(sim, client):
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=5)
    response = client.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert response.usage_metadata.prompt_token_count == count_tokens(f"Be brief. {PROMPT}")
    assert response.usage_metadata.candidates_token_count == 5
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    logged = sim.log("chan")[0]
    assert logged["body"]["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert logged["body"]["generationConfig"] == {"maxOutputTokens": 5}


def test_cached_tokens_are_reported_inside_the_prompt_count(sim, client):
    sim.set_fault("chan", cached_tokens=4, reply_tokens=3)
    usage = client.models.generate_content(model=MODEL, contents=PROMPT).usage_metadata
    assert usage.cached_content_token_count == 4
    assert usage.prompt_token_count == count_tokens(PROMPT)
    assert usage.candidates_token_count == 3


def test_stream_sends_each_token_with_cumulative_usage(sim, client):
    whole = client.models.generate_content(model=MODEL, contents=PROMPT)
    chunks = collect(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert len(chunks) == 12
    assert "".join(c.text for c in chunks) == whole.text
    assert [c.usage_metadata.candidates_token_count for c in chunks] == list(range(1, 13))
    assert {c.usage_metadata.prompt_token_count for c in chunks} == {whole.usage_metadata.prompt_token_count}
    assert [c.candidates[0].finish_reason for c in chunks][-2:] == [None, types.FinishReason.STOP]
    (_, streamed) = sim.log("chan")
    assert streamed["path"] == f"/chan/v1beta/models/{MODEL}:streamGenerateContent"
    assert streamed["stream"] is True and streamed["model"] == MODEL


def test_stream_is_server_sent_events_without_a_done_marker(sim):
    response = requests.post(url(sim, "streamGenerateContent"), params={"alt": "sse"}, json=BODY,
                             headers={"x-goog-api-key": KEY}, timeout=10)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    assert len(events) == 12
    assert all(block.startswith('data: {"candidates"') for block in events)


def test_function_call_round_trip(sim, client):
    manual = types.AutomaticFunctionCallingConfig(disable=True)  # the test plays the tool itself
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=manual)
    question = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])
    first = client.models.generate_content(model=MODEL, contents=[question], config=config)
    (call,) = first.function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    answer = types.Part.from_function_response(name="get_weather", response={"content": {"temp_c": 21}})
    second = client.models.generate_content(
        model=MODEL, config=config,
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=[answer])])
    assert second.function_calls is None
    assert '{"temp_c": 21}' in second.text
    sent = sim.log("chan")[0]["body"]
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


def test_without_tools_weather_is_just_text(sim, client):
    response = client.models.generate_content(model=MODEL, contents="What is the weather in Paris?")
    assert response.function_calls is None and response.text


# --- the key ---------------------------------------------------------------------------------------

def test_the_key_arrives_in_x_goog_api_key_not_in_the_url(sim, client):
    client.models.generate_content(model=MODEL, contents=PROMPT)
    (logged,) = sim.log("chan")
    assert logged["headers"]["x-goog-api-key"] == KEY
    assert KEY not in logged["path"]
    assert "authorization" not in logged["headers"]


def test_a_key_in_the_url_is_refused(sim):
    response = requests.post(url(sim), params={"key": KEY}, json=BODY, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert sim.log("raw") == [], "a refused request is not an upstream call"


def test_a_stream_that_is_not_sse_is_refused(sim):
    response = requests.post(url(sim, "streamGenerateContent"), json=BODY, headers={"x-goog-api-key": KEY}, timeout=10)
    assert response.status_code == 400
    assert "alt=sse" in response.json()["error"]["message"]


def test_a_request_without_a_key_is_refused(sim):
    response = requests.post(url(sim), json=BODY, timeout=10)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


def test_an_unknown_method_is_not_found(sim):
    response = requests.post(url(sim, "countTokens"), json=BODY, headers={"x-goog-api-key": KEY}, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


def test_malformed_request_is_invalid_argument(sim):
    response = requests.post(url(sim), json={"contents": []}, headers={"x-goog-api-key": KEY}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == {"code": 400, "message": "contents is required", "status": "INVALID_ARGUMENT"}


# --- fault knobs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, name", [(429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE"), (400, "INVALID_ARGUMENT"),
                                          (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")])
def test_status_fault_is_a_google_error_envelope(sim, client, status, name):
    sim.set_fault("chan", status=status)
    with pytest.raises(genai.errors.APIError) as caught:
        client.models.generate_content(model=MODEL, contents=PROMPT)
    assert (caught.value.code, caught.value.status) == (status, name)
    assert caught.value.message == "simulated %d from chan" % status


def test_429_carries_a_retry_delay(sim, client):
    sim.set_fault("chan", status=429, retry_after=7)
    with pytest.raises(genai.errors.ClientError) as caught:
        collect(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert caught.value.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]


def test_status_with_cut_after_sends_the_error_mid_stream(sim, client):
    sim.set_fault("chan", status=503, cut_after=2)
    received = []
    with pytest.raises(genai.errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model=MODEL, contents=PROMPT):
            received.append(chunk.text)
            assert len(received) < 50
    assert caught.value.code == 503
    assert received == ["Simulated ", "reply "]


def test_cut_after_breaks_the_stream(sim):
    sim.set_fault("chan", cut_after=3)
    response = requests.post(url(sim, "streamGenerateContent", "chan"), params={"alt": "sse"}, json=BODY,
                             headers={"x-goog-api-key": KEY}, stream=True, timeout=10)
    events = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for line in response.iter_lines():
            events.extend([line] if line else [])
            assert len(events) < 50
    assert len(events) == 3


def test_drop_and_bad_body(sim):
    sim.set_fault("chan", drop=True, times=1)
    with pytest.raises(requests.ConnectionError):
        requests.post(url(sim, channel="chan"), json=BODY, headers={"x-goog-api-key": KEY}, timeout=10)
    sim.set_fault("chan", bad_body=True)
    response = requests.post(url(sim, channel="chan"), json=BODY, headers={"x-goog-api-key": KEY}, timeout=10)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_served_model_and_omit_usage(sim, client):
    sim.set_fault("chan", served_model="gemini-2.0-flash-001", omit_usage=True)
    response = client.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.model_version == "gemini-2.0-flash-001"
    assert response.usage_metadata is None
    chunks = collect(client.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert {c.model_version for c in chunks} == {"gemini-2.0-flash-001"}
    assert all(c.usage_metadata is None for c in chunks)
    assert [e["model"] for e in sim.log("chan")] == [MODEL, MODEL]
