"""An upstream's redirect is never followed: the key would travel to wherever Location points."""
from __future__ import annotations

import pytest

from app.providers.base import ErrorClass, UpstreamCall, UpstreamError
from app.providers.registry import adapter_for
from tests.conftest import receipt_of
from tests.providers.adapter_calls import failure
from tests.security.conftest import API_ROOT, PROVIDERS

# Where each protocol would re-send the request if the redirect were followed (307 keeps method and body).
TARGET_PATH = {"openai": "/v1/chat/completions", "openai-compatible": "/v1/chat/completions",
               "anthropic": "/v1/messages", "gemini": "/v1beta/models/upstream-chat:generateContent"}


def _call(sim, provider: str, stream: bool, endpoint: str = "chat") -> UpstreamCall:
    body = ({"model": "m", "input": "alpha"} if endpoint == "embeddings"
            else {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    return UpstreamCall(channel="redirector", provider=provider, base_url=f"{sim.root}/redirector{API_ROOT[provider]}",
                        api_key="rk-7Qp2Vx9LmZ3aT8cW1nB4", timeout_s=5, upstream_model="upstream-chat",
                        endpoint=endpoint, body=body, stream=stream)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redirect_is_a_bad_response_and_the_target_hears_nothing(sim, elsewhere, provider, stream):
    elsewhere.reset()
    sim.set_fault("redirector", redirect_to=f"{elsewhere.root}/thief{TARGET_PATH[provider]}")
    error = failure(adapter_for(provider), _call(sim, provider, stream))
    assert (error.error_class, error.http_status, error.falls_back) == (ErrorClass.BAD_RESPONSE, 307, True)
    assert "redirect" in error.detail and "thief" not in error.detail
    assert len(sim.log("redirector")) == 1
    assert elsewhere.log() == []


def test_an_embeddings_redirect_is_not_followed_either(sim, elsewhere):
    elsewhere.reset()
    sim.set_fault("redirector", redirect_to=f"{elsewhere.root}/thief/v1/embeddings")
    with pytest.raises(UpstreamError) as caught:
        adapter_for("openai").send(_call(sim, "openai", False, "embeddings"))
    assert caught.value.error_class == ErrorClass.BAD_RESPONSE
    assert elsewhere.log() == []


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_gateway_falls_back_past_a_redirecting_channel(hostile, sim, openai_client, elsewhere, provider, stream):
    elsewhere.reset()
    channel = hostile[provider]
    sim.set_fault(channel.name, redirect_to=f"{elsewhere.root}/thief{TARGET_PATH[provider]}")
    raw = openai_client.chat.completions.with_raw_response.create(
        model=channel.fallback, stream=stream, messages=[{"role": "user", "content": "hi"}])
    if stream:
        list(raw.parse())
    assert raw.headers["X-Waybill-Route"] == "safe"
    receipt = receipt_of(openai_client, raw.headers["X-Waybill-Receipt"])
    assert [(a["channel"], a["outcome"], a["error_class"], a["http_status"]) for a in receipt["attempts"]] == [
        (channel.name, "error", "bad_response", 307), ("safe", "ok", None, 200)]
    assert elsewhere.log() == []
