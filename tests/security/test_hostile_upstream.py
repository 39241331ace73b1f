"""A hostile upstream echoes its key in every form, on every provider; none of it leaves Waybill.

For each provider and each form, the upstream echoes the key it received in its error messages, in the
model name it says served, in stream error events and in a response header. Requests go through the
gateway with the official OpenAI SDK, and as raw HTTP to the Anthropic and Gemini client APIs; then every
answer (body and headers), every receipt, every log line and every text in the database is searched for
the key in every form, with telltales computed here rather than by the redaction under test.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import openai
import pytest
import requests

from tests.security.conftest import PROVIDERS, HostileChannel
from tests.security.key_forms import FORM_NAMES, leaks

HI = [{"role": "user", "content": "hi"}]


@dataclass
class Exchange:
    """One request through the gateway: what the client saw."""

    status: int
    headers: dict[str, str]
    text: str

    @property
    def receipt(self) -> str:
        return self.headers["x-waybill-receipt"]


@dataclass
class Seen:
    """Everything that left Waybill during the test, to be searched for the key."""

    live_server: str
    api_key: str
    exchanges: list[Exchange] = field(default_factory=list)

    def note(self, status: int, headers, text: str) -> Exchange:
        exchange = Exchange(status, {k.lower(): v for k, v in headers.items()}, text)
        self.exchanges.append(exchange)
        return exchange

    def text(self) -> str:
        return "\n".join(f"{e.status} {json.dumps(e.headers)}\n{e.text}" for e in self.exchanges)


def _through_sdk(client: openai.OpenAI, seen: Seen, **request) -> Exchange:
    """A chat or embeddings request with the OpenAI SDK, keeping the raw answer whatever its status."""
    create = client.embeddings if "input" in request else client.chat.completions
    try:
        with create.with_streaming_response.create(**request) as response:
            return seen.note(response.status_code, response.headers, response.text())
    except openai.APIStatusError as error:
        return seen.note(error.status_code, error.response.headers, error.response.text)


def _raw(seen: Seen, path: str, body: dict, headers: dict[str, str]) -> Exchange:
    response = requests.post(seen.live_server + path, json=body, headers=headers, timeout=30)
    return seen.note(response.status_code, response.headers, response.text)


def _messages(seen: Seen, model: str) -> Exchange:
    """Anthropic's Messages API, as Claude clients call it."""
    return _raw(seen, "/v1/messages", {"model": model, "max_tokens": 20, "messages": HI},
                {"x-api-key": seen.api_key, "anthropic-version": "2023-06-01"})


def _gemini(seen: Seen, model: str) -> Exchange:
    """Gemini's generateContent, as google-genai clients call it."""
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    return _raw(seen, f"/v1beta/models/{model}:generateContent", body, {"x-goog-api-key": seen.api_key})


def _conversation(sim, client: openai.OpenAI, seen: Seen, channel: HostileChannel, form: str) -> None:
    """Every way upstream text reaches Waybill, never three failures in a row (a circuit would open)."""
    def upstream(**knobs) -> None:
        sim.set_fault(channel.name, echo_key=form, **knobs)

    chat = {"model": channel.chat, "messages": HI}
    upstream()
    assert _through_sdk(client, seen, **chat).status == 200
    upstream(status=503)
    assert _through_sdk(client, seen, **chat).status == 502
    upstream()
    assert _through_sdk(client, seen, **chat, stream=True, stream_options={"include_usage": True}).status == 200
    upstream(status=500)
    assert _through_sdk(client, seen, **chat, stream=True).status == 502
    upstream()
    assert _messages(seen, channel.chat).status == 200
    upstream(status=500, cut_after=2)  # an error event after two chunks
    assert "upstream_interrupted" in _through_sdk(client, seen, **chat, stream=True).text
    upstream(status=400)
    assert _through_sdk(client, seen, **chat).status == 400
    upstream()
    assert _gemini(seen, channel.chat).status == 200
    upstream(status=400)
    assert _messages(seen, channel.chat).status == 400
    assert _gemini(seen, channel.chat).status == 400
    if channel.embed:
        upstream()
        assert _through_sdk(client, seen, model=channel.embed, input="alpha").status == 200


def _receipts(seen: Seen) -> str:
    texts = []
    for exchange in seen.exchanges:
        response = requests.get(f"{seen.live_server}/v1/receipts/{exchange.receipt}",
                                headers={"Authorization": f"Bearer {seen.api_key}"}, timeout=30)
        assert response.status_code == 200
        texts.append(response.text)
    return "\n".join(texts)


def _database_text() -> str:
    """Every text, JSON and binary value of every row of every table."""
    import app.models  # noqa: F401  (every table on the metadata)
    from app.extensions import db
    db.session.rollback()
    texts = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(table.select()):
            for value in row:
                if isinstance(value, str):
                    texts.append(value)
                elif isinstance(value, bytes):
                    texts.append(value.decode("latin-1"))
                elif isinstance(value, (dict, list)):
                    texts.append(json.dumps(value))
    return "\n".join(texts)


@pytest.mark.parametrize("form", FORM_NAMES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_form_of_the_key_leaves_waybill(hostile, sim, gateway, openai_client, live_server, caplog, provider, form):
    caplog.set_level(logging.DEBUG)
    channel = hostile[provider]
    seen = Seen(live_server, gateway.key)
    _conversation(sim, openai_client, seen, channel, form)

    received = {v for entry in sim.log(channel.name) for v in entry["headers"].values()}
    assert any(channel.key in value for value in received), "the upstream never got the key to echo"
    places = {"answers": seen.text(), "receipts": _receipts(seen), "logs": caplog.text, "database": _database_text()}
    found = {place: leaks(text, channel.key) for place, text in places.items()}
    assert found == {place: [] for place in places}
    # Proof the upstream did echo it: what came back in its place is the redaction marker.
    assert "[redacted]" in places["answers"] and "[redacted]" in places["receipts"]
