"""GPT, Claude and Gemini behind one API: every SDK, every provider, translated both ways."""
from __future__ import annotations

import json

import anthropic
import openai
import pytest

from app.billing.pricing import Price, Usage, charge_micros
from tests.conftest import assert_ledger_green

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _receipt(client, receipt_id: str) -> dict:
    return client.get(f"/receipts/{receipt_id}", cast_to=object)


@pytest.mark.parametrize("model,channel", [("claude-sonnet-4-6", "claude-direct"), ("gemini-2.5-flash", "gemini-direct")])
def test_openai_sdk_calls_claude_and_gemini_json_and_stream(openai_client, providers, model, channel):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}])
    completion = raw.parse()
    assert raw.headers["X-Waybill-Route"] == channel
    assert completion.choices[0].message.content.startswith("Simulated reply")
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["attempts"][0]["provider"] in ("anthropic", "gemini")
    assert receipt["usage"]["prompt_tokens"] == completion.usage.prompt_tokens
    assert receipt["usage"]["source"] == "reported"

    stream = openai_client.chat.completions.with_raw_response.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream to me"}])
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Simulated reply")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    receipt = _receipt(openai_client, stream.headers["X-Waybill-Receipt"])
    assert (receipt["status"], receipt["stream"]) == ("succeeded", True)
    assert receipt["usage"]["completion_tokens"] == chunks[-1].usage.completion_tokens
    assert_ledger_green()


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "gemini-2.5-flash"])
def test_tool_call_round_trip_through_the_openai_sdk(openai_client, providers, model):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = openai_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"}]
    second = openai_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert "18 C and sunny" in second.choices[0].message.content


@pytest.mark.parametrize("model,channel", [("gpt-4o-mini", "primary"), ("claude-sonnet-4-6", "claude-direct")])
def test_anthropic_sdk_on_v1_messages_over_openai_and_anthropic_channels(claude_client, providers, model, channel):
    raw = claude_client.messages.with_raw_response.create(
        model=model, max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "Hello Claude"}])
    message = raw.parse()
    assert raw.headers["X-Waybill-Route"] == channel
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text.startswith("Simulated reply")
    assert message.usage.output_tokens > 0
    with claude_client.messages.stream(model=model, max_tokens=64,
                                       messages=[{"role": "user", "content": "Stream please"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Simulated reply")
    assert final.usage.output_tokens > 0
    from app.extensions import db
    from app.gateway.models import Receipt
    db.session.rollback()
    endpoints = db.session.scalars(db.select(Receipt.endpoint).where(Receipt.status == "succeeded")).all()
    assert endpoints.count("messages") == 2
    assert_ledger_green()


def test_v1_messages_accepts_bearer_and_answers_errors_in_anthropics_envelope(claude_client, providers, live_server):
    import requests
    ok = requests.post(f"{live_server}/v1/messages", headers={"Authorization": f"Bearer {providers.key}",
                                                               "anthropic-version": "2023-06-01"},
                       json={"model": "claude-sonnet-4-6", "max_tokens": 20,
                             "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert ok.status_code == 200 and ok.json()["type"] == "message"
    with_x_api_key = requests.post(f"{live_server}/v1/messages", headers={"x-api-key": providers.key},
                                   json={"model": "gpt-4o-mini", "max_tokens": 20,
                                         "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert with_x_api_key.status_code == 200 and with_x_api_key.json()["content"][0]["type"] == "text"
    with pytest.raises(anthropic.NotFoundError) as error:
        claude_client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert error.value.body["type"] == "error" and error.value.body["error"]["type"] == "not_found_error"
    bad = anthropic.Anthropic(base_url=live_server, api_key="wb-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError):
        claude_client.messages.create(model="claude-sonnet-4-6", max_tokens=10,
                                      messages=[{"role": "user", "content": [{"type": "hologram", "data": "x"}]}])


def test_claude_cached_tokens_are_billed_at_the_cached_price(openai_client, providers):
    providers.sim.set_fault("claude-direct", cached_tokens=6)
    prompt = "a long shared system prompt " * 10
    raw = openai_client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user", "content": prompt}])
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    usage = receipt["usage"]
    assert usage["cached_tokens"] == 6 and usage["source"] == "reported"
    price = Price(3_000_000, 15_000_000, 300_000)
    expected = charge_micros(Usage(usage["prompt_tokens"], usage["completion_tokens"], 6), price)
    assert receipt["charge_usd"] == f"{expected / 1e6:.6f}"
    assert receipt["price"]["cached_input_per_mtok"] == "0.3"


def test_claude_falls_back_to_an_openai_compatible_relay(openai_client, providers):
    providers.sim.set_fault("claude-direct", status=529)
    raw = openai_client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "overloaded?"}])
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert [(a["channel"], a["provider"], a["upstream_model"], a["outcome"]) for a in receipt["attempts"]] == [
        ("claude-direct", "anthropic", "claude-sonnet-4-6", "error"),
        ("relay-c", "openai-compatible", "anthropic/claude-sonnet-4.6", "ok")]
    assert receipt["attempts"][0]["error_class"] == "upstream_5xx"
    assert receipt["settlement"] == "routed"


@pytest.mark.parametrize("content,tools,limit", [
    ([{"type": "text", "text": "what is this?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}], None, "does not accept images"),
    ("call a tool", [WEATHER_TOOL], "does not support tools"),
    ([{"type": "hologram", "data": "x"}], None, "unknown content part type"),
])
def test_requests_a_model_cannot_take_are_400_with_no_fallback_or_charge(openai_client, providers, content, tools, limit):
    extra = {"tools": tools} if tools else {}
    with pytest.raises(openai.BadRequestError) as error:
        openai_client.chat.completions.create(model="text-only-model", messages=[{"role": "user", "content": content}],
                                              **extra)
    assert limit in error.value.body["message"]
    assert providers.sim.log("relay-c") == []
    assert providers.balances() == {"credit": (10_000_000, 0), "routed": (10_000_000, 0)}
    assert_ledger_green()
