"""The hostile-upstream knobs: `echo_key` echoes the received key in a chosen form, `redirect_to` answers 307."""
from __future__ import annotations

import json

import pytest
import requests

from tests.security.key_forms import FORM_NAMES, leaks

KEY = "Zq8-Lp3_Xw7Mv2Nc9Rt4Bk6Hd1"
# Each protocol: the chat path under a channel, its headers with KEY, a body, and where it names its model.
PROTOCOLS = {
    "openai": ("/v1/chat/completions", {"Authorization": f"Bearer {KEY}"},
               {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    "anthropic": ("/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
                  {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
    "gemini": ("/v1beta/models/m:generateContent", {"x-goog-api-key": KEY},
               {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
}
STREAM = {"openai": ("/v1/chat/completions", {"stream": True}), "anthropic": ("/v1/messages", {"stream": True}),
          "gemini": ("/v1beta/models/m:streamGenerateContent?alt=sse", {})}


def _post(sim, protocol: str, stream: bool = False, channel: str = "echo", **options) -> requests.Response:
    path, headers, body = PROTOCOLS[protocol]
    if stream:
        path, extra = STREAM[protocol]
        body = {**body, **extra}
    return requests.post(f"{sim.root}/{channel}{path}", headers=headers, json=body, timeout=10, **options)


def test_the_knob_takes_exactly_the_forms_the_tests_look_for():
    from app.simulator.state import KEY_FORMS
    assert sorted(KEY_FORMS) == sorted(FORM_NAMES)


@pytest.mark.parametrize("form", FORM_NAMES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_echo_key_echoes_the_received_key_in_errors_models_and_a_header(sim, protocol, form):
    sim.set_fault("echo", echo_key=form)
    served = _post(sim, protocol)
    assert served.status_code == 200
    model = served.json().get("model") or served.json().get("modelVersion")
    assert leaks(model, KEY), model  # the tests' own telltales recognise what the simulator echoes
    assert leaks(served.headers["X-Echo-Key"], KEY)
    sim.set_fault("echo", echo_key=form, status=503)
    failed = _post(sim, protocol)
    assert failed.status_code == 503 and leaks(failed.text, KEY) and leaks(failed.headers["X-Echo-Key"], KEY)
    sim.set_fault("echo", echo_key=form, status=500, cut_after=1)
    cut = _post(sim, protocol, stream=True)
    assert cut.status_code == 200
    last = [line for line in cut.text.splitlines() if line.startswith("data:")][-1]
    assert "error" in json.loads(last[5:]) and leaks(last, KEY)


def test_an_unknown_echo_form_is_refused(sim):
    response = requests.put(f"{sim.root}/_control/faults/x", json={"echo_key": "rot13"}, timeout=10)
    assert response.status_code == 400 and "echo_key" in response.json()["error"]


def test_openai_stream_with_status_and_cut_after_ends_in_an_error_event(sim):
    sim.set_fault("echo", status=503, cut_after=2)
    response = _post(sim, "openai", stream=True)
    events = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["Simulated ", "reply "]
    assert events[-1] == {"error": {"message": "simulated 503 from echo", "type": "server_error",
                                    "code": "simulated_error"}}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_redirect_to_answers_307_and_a_client_that_follows_hands_over_its_key(sim, protocol):
    # Why Waybill must never follow: 307 keeps method, body and these key headers, even across hosts.
    path = PROTOCOLS[protocol][0]
    sim.set_fault("lure", redirect_to=f"{sim.root}/thief{path}")
    refused = _post(sim, protocol, channel="lure", allow_redirects=False)
    assert refused.status_code == 307 and refused.headers["Location"] == f"{sim.root}/thief{path}"
    followed = _post(sim, protocol, channel="lure")
    assert followed.status_code == 200
    assert KEY in json.dumps(sim.log("thief")[0]["headers"])
