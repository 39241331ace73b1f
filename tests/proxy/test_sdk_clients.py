"""The SDK calls users make every day, made with the official SDKs against the running app."""
from __future__ import annotations

import calendar

import anthropic
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from app.accounts.models import User
from app.accounts.service import issue_key
from app.catalog.models import Model
from app.extensions import db
from app.gateway.models import Receipt
from app.gateway.parsing import estimate_tokens, parse_chat
from app.proxy.clients.anthropic import anthropic_request_to_openai
from tests.conftest import assert_ledger_green

# Each public model on the provider whose protocol its primary channel speaks.
PRIMARIES = [("gemini-2.5-flash", "gemini-direct", "credit"), ("claude-sonnet-4-6", "claude-direct", "credit"),
             ("gpt-4o-mini", "primary", "credit")]
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather for a city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))])


def _receipts() -> list[Receipt]:
    db.session.rollback()
    return list(db.session.scalars(db.select(Receipt).order_by(Receipt.created_at)))


def _receipt(openai_client: openai.OpenAI, receipt_id: str) -> dict:
    return openai_client.get(f"/receipts/{receipt_id}", cast_to=object)


def _spent(before: dict, after: dict, wallet: str) -> int:
    return before[wallet][0] - after[wallet][0]


def _user(user_id: int) -> User:
    db.session.rollback()
    return db.session.get(User, user_id)


# --- google-genai --------------------------------------------------------------------------------

@pytest.mark.parametrize("model,channel,wallet", PRIMARIES)
def test_genai_generate_content_is_routed_charged_and_receipted(genai_client, providers, openai_client, model,
                                                                channel, wallet):
    before = providers.balances()
    response = genai_client.models.generate_content(
        model=model, contents="Hello there",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50, temperature=0.2))
    assert response.text.startswith("Simulated reply")
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == model
    headers = response.sdk_http_response.headers
    assert headers["x-waybill-route"] == channel and headers["x-waybill-settlement"] == "official"
    receipt = _receipt(openai_client, headers["x-waybill-receipt"])
    assert (receipt["status"], receipt["requested_model"], receipt["stream"]) == ("succeeded", model, False)
    assert receipt["usage"]["prompt_tokens"] == response.usage_metadata.prompt_token_count
    assert receipt["usage"]["completion_tokens"] == response.usage_metadata.candidates_token_count
    assert receipt["usage"]["source"] == "reported"
    assert _receipts()[-1].endpoint == "gemini"
    after = providers.balances()
    assert f"{_spent(before, after, wallet) / 1e6:.6f}" == receipt["charge_usd"] != "0.000000"
    assert after[wallet][1] == 0, "the hold is settled"
    assert_ledger_green()


@pytest.mark.parametrize("model,channel,wallet", PRIMARIES)
def test_genai_stream_is_routed_charged_and_receipted(genai_client, providers, openai_client, model, channel,
                                                      wallet):
    before = providers.balances()
    chunks = list(genai_client.models.generate_content_stream(model=model, contents="Stream to me"))
    assert "".join(chunk.text or "" for chunk in chunks).startswith("Simulated reply")
    assert len(chunks) > 2, "text arrives as it is generated, not in one piece"
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count > 0
    headers = chunks[0].sdk_http_response.headers
    assert headers["x-waybill-route"] == channel
    receipt = _receipt(openai_client, headers["x-waybill-receipt"])
    assert (receipt["status"], receipt["stream"]) == ("succeeded", True)
    assert receipt["usage"]["completion_tokens"] == last.usage_metadata.candidates_token_count
    after = providers.balances()
    assert f"{_spent(before, after, wallet) / 1e6:.6f}" == receipt["charge_usd"] != "0.000000"
    assert after[wallet][1] == 0
    assert_ledger_green()


def test_genai_falls_back_to_a_relay_and_says_so(genai_client, providers, openai_client):
    providers.sim.set_fault("gemini-direct", status=503)
    before = providers.balances()
    response = genai_client.models.generate_content(model="gemini-2.5-flash", contents="Anyone there?")
    assert response.text.startswith("Simulated reply")
    headers = response.sdk_http_response.headers
    assert (headers["x-waybill-route"], headers["x-waybill-settlement"]) == ("relay-c", "routed")
    receipt = _receipt(openai_client, headers["x-waybill-receipt"])
    assert [(a["channel"], a["outcome"]) for a in receipt["attempts"]] == [("gemini-direct", "error"),
                                                                          ("relay-c", "ok")]
    assert _spent(before, providers.balances(), "routed") > 0
    assert_ledger_green()


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gemini-2.5-flash"])
def test_genai_function_call_round_trip(genai_client, providers, model):
    config = types.GenerateContentConfig(tools=[WEATHER])
    question = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])
    first = genai_client.models.generate_content(model=model, contents=[question], config=config)
    call = first.function_calls[0]
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    answer = types.Content(role="user", parts=[types.Part.from_function_response(
        name="get_weather", response={"content": "18 C and sunny"})])
    second = genai_client.models.generate_content(model=model, contents=[question, first.candidates[0].content, answer],
                                                  config=config)
    assert "18 C and sunny" in second.text


def test_genai_stream_cut_mid_way_raises_and_charges_what_was_delivered(genai_client, providers, openai_client):
    providers.sim.set_fault("gemini-direct", cut_after=3)
    before = providers.balances()
    received = []
    with pytest.raises(genai_errors.APIError) as caught:
        for chunk in genai_client.models.generate_content_stream(model="gemini-2.5-flash", contents="Long story"):
            received.append(chunk)
            assert len(received) < 50, "the stream never broke"
    assert received, "the first chunks reached the client before the cut"
    assert caught.value.code == 502 and "receipt rcpt_" in caught.value.message
    receipt_id = received[0].sdk_http_response.headers["x-waybill-receipt"]
    receipt = _receipt(openai_client, receipt_id)
    assert (receipt["status"], receipt["failure_stage"]) == ("interrupted", "mid_stream")
    assert f"{_spent(before, providers.balances(), 'credit') / 1e6:.6f}" == receipt["charge_usd"]
    assert_ledger_green()


def test_genai_errors_come_in_googles_envelope(genai_client, providers, live_server):
    from google import genai
    before = providers.balances()
    with pytest.raises(genai_errors.ClientError) as unknown:
        genai_client.models.generate_content(model="no-such-model", contents="hi")
    assert (unknown.value.code, unknown.value.status) == (404, "NOT_FOUND")
    assert "no-such-model" in unknown.value.message
    stranger = genai.Client(api_key="wb-not-a-key", http_options=types.HttpOptions(base_url=live_server))
    with pytest.raises(genai_errors.ClientError) as unauthenticated:
        stranger.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (unauthenticated.value.code, unauthenticated.value.status) == (401, "UNAUTHENTICATED")
    providers.sim.set_fault("gemini-direct", status=503)
    providers.sim.set_fault("relay-c", status=503)
    with pytest.raises(genai_errors.ServerError) as failed:
        genai_client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert failed.value.code == 502 and failed.value.status == "UNAVAILABLE"
    assert failed.value.details["error"]["details"][0]["reason"] == "ALL_ROUTES_FAILED"
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert failed.value.response.headers["x-waybill-receipt"] in failed.value.message
    assert providers.balances() == before
    assert_ledger_green()


def test_genai_lists_and_gets_the_models_of_the_key(genai_client, providers, live_server):
    from google import genai
    listed = {m.name: m for m in genai_client.models.list()}
    assert set(listed) == {"models/claude-sonnet-4-6", "models/gemini-2.5-flash", "models/gpt-4o-mini",
                           "models/text-embedding-3-small", "models/text-only-model"}
    flash = listed["models/gemini-2.5-flash"]
    assert (flash.display_name, flash.input_token_limit, flash.output_token_limit) == (
        "Gemini 2.5 Flash", 1048576, 65535)
    assert "generateContent" in flash.supported_actions
    assert listed["models/text-embedding-3-small"].supported_actions == []
    assert genai_client.models.get(model="gemini-2.5-flash").name == "models/gemini-2.5-flash"
    scoped_key = issue_key(_user(providers.user_id), "flash only", models=["gemini-2.5-flash"]).secret
    scoped = genai.Client(api_key=scoped_key, http_options=types.HttpOptions(base_url=live_server))
    assert [m.name for m in scoped.models.list()] == ["models/gemini-2.5-flash"]
    with pytest.raises(genai_errors.ClientError) as hidden:
        scoped.models.get(model="claude-sonnet-4-6")
    assert hidden.value.code == 404


# --- anthropic: count_tokens ---------------------------------------------------------------------

def test_anthropic_count_tokens_estimates_without_hold_charge_or_receipt(claude_client, providers):
    request = {"model": "claude-sonnet-4-6", "system": "Be brief.",
               "messages": [{"role": "user", "content": "How many tokens is this sentence, roughly?"}]}
    before, receipts_before = providers.balances(), len(_receipts())
    counted = claude_client.messages.count_tokens(**request)
    expected = estimate_tokens(parse_chat(anthropic_request_to_openai(request, counting=True)).prompt_text)
    assert counted.input_tokens == expected > 0
    assert providers.balances() == before
    assert len(_receipts()) == receipts_before
    assert providers.sim.log() == [], "counting never calls an upstream"
    assert_ledger_green()


def test_anthropic_count_tokens_checks_the_key_and_the_model(claude_client, providers, live_server):
    with pytest.raises(anthropic.NotFoundError) as unknown:
        claude_client.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert unknown.value.body["error"]["type"] == "not_found_error"
    scoped_key = issue_key(_user(providers.user_id), "gpt only", models=["gpt-4o-mini"]).secret
    scoped = anthropic.Anthropic(base_url=live_server, api_key=scoped_key, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        scoped.messages.count_tokens(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}])
    assert scoped.messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).input_tokens
    stranger = anthropic.Anthropic(base_url=live_server, api_key="wb-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        stranger.messages.count_tokens(model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError):
        claude_client.messages.count_tokens(model="claude-sonnet-4-6", messages=[])
    assert _receipts() == []


# --- openai: models.retrieve ---------------------------------------------------------------------

def test_openai_models_retrieve_shows_one_model_of_the_key(openai_client, providers, live_server):
    found = openai_client.models.retrieve("claude-sonnet-4-6")
    assert (found.id, found.object, found.owned_by) == ("claude-sonnet-4-6", "model", "anthropic")
    created_at = db.session.get(Model, "claude-sonnet-4-6").created_at  # naive UTC, when the catalog got it
    assert found.created == calendar.timegm(created_at.utctimetuple()) > 1_700_000_000
    scoped_key = issue_key(_user(providers.user_id), "gpt only", models=["gpt-4o-mini"]).secret
    scoped = openai.OpenAI(base_url=f"{live_server}/v1", api_key=scoped_key, max_retries=0)
    assert scoped.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    for hidden in ("claude-sonnet-4-6", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as caught:
            scoped.models.retrieve(hidden)
        assert caught.value.body["code"] == "model_not_found"
        assert caught.value.response.headers["x-should-retry"] == "false"
