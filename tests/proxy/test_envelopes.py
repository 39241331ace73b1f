"""Every API answer is JSON in the caller's envelope: unknown paths, wrong methods and unexpected errors too."""
from __future__ import annotations

import openai
import pytest
import requests

from app.proxy.envelopes import api_error_response

OPENAI_ERROR_FIELDS = {"message", "type", "param", "code"}


def _openai_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == OPENAI_ERROR_FIELDS and error["param"] is None
    assert error["code"] == code
    return error


def _anthropic_error(response: requests.Response, status: int, error_type: str) -> None:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type and body["error"]["message"]


def _google_error(response: requests.Response, status: int, status_name: str) -> dict:
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, status_name) and error["message"]
    return error


def test_unknown_api_paths_answer_404_in_the_callers_envelope(gateway, live_server):
    key = {"Authorization": f"Bearer {gateway.key}"}
    error = _openai_error(requests.get(f"{live_server}/v1/no-such-endpoint", headers=key, timeout=30), 404, "not_found")
    assert "/v1/no-such-endpoint" in error["message"]
    batches = requests.post(f"{live_server}/v1/messages/batches", headers=key, timeout=30)
    _anthropic_error(batches, 404, "not_found_error")
    _google_error(requests.post(f"{live_server}/v1beta/cachedContents", headers=key, timeout=30), 404, "NOT_FOUND")
    assert requests.get(f"{live_server}/v1", timeout=30).json()["error"]["code"] == "not_found"


def test_the_openai_sdk_reads_an_unknown_path_as_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.get("/no-such-endpoint", cast_to=object)
    assert caught.value.body["code"] == "not_found"


def test_wrong_methods_answer_405_in_the_callers_envelope(gateway, live_server):
    response = requests.get(f"{live_server}/v1/chat/completions", timeout=30)
    _openai_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    _anthropic_error(requests.get(f"{live_server}/v1/messages", timeout=30), 405, "invalid_request_error")
    _google_error(requests.delete(f"{live_server}/v1beta/models", timeout=30), 405, "UNIMPLEMENTED")


def test_unexpected_errors_answer_500_in_the_callers_envelope(gateway, live_server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug with a secret sk-live-123456789 in it")

    monkeypatch.setattr("app.proxy.views.serve", broken)
    key = {"Authorization": f"Bearer {gateway.key}"}
    chat = requests.post(f"{live_server}/v1/chat/completions", headers=key, timeout=30,
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert _openai_error(chat, 500, "internal_error")["message"] == "Waybill hit an internal error"
    messages = requests.post(f"{live_server}/v1/messages", headers=key, timeout=30,
                             json={"model": "gpt-4o-mini", "max_tokens": 5,
                                   "messages": [{"role": "user", "content": "x"}]})
    _anthropic_error(messages, 500, "api_error")
    gemini = requests.post(f"{live_server}/v1beta/models/gpt-4o-mini:generateContent", timeout=30,
                           headers={"x-goog-api-key": gateway.key}, json={"contents": [{"parts": [{"text": "x"}]}]})
    _google_error(gemini, 500, "INTERNAL")
    for response in (chat, messages, gemini):
        assert "sk-live" not in response.text and "RuntimeError" not in response.text


def test_gateway_errors_on_gemini_paths_keep_the_waybill_headers(gateway, live_server):
    gateway.sim.set_fault("primary", status=503)
    gateway.sim.set_fault("backup", status=503)
    response = requests.post(f"{live_server}/v1beta/models/gpt-4o-mini:generateContent", timeout=30,
                             headers={"x-goog-api-key": gateway.key}, json={"contents": [{"parts": [{"text": "x"}]}]})
    error = _google_error(response, 502, "UNAVAILABLE")
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ALL_ROUTES_FAILED",
                                 "domain": "waybill"}]
    assert response.headers["X-Waybill-Receipt"] in error["message"]
    assert response.headers["X-Waybill-Attempts"] == "2" and response.headers["x-should-retry"] == "false"


def test_a_gemini_body_that_cannot_be_a_chat_is_400_with_a_receipt(gateway, live_server):
    response = requests.post(f"{live_server}/v1beta/models/gpt-4o-mini:generateContent", timeout=30,
                             headers={"x-goog-api-key": gateway.key},
                             json={"contents": [{"parts": [{"executableCode": {"code": "print(1)"}}]}]})
    error = _google_error(response, 400, "INVALID_ARGUMENT")
    assert "executableCode" in error["message"]
    assert response.headers["X-Waybill-Receipt"].startswith("rcpt_")
    assert gateway.sim.log() == []


def test_the_google_list_on_v1_is_told_apart_by_its_key_header(gateway, live_server):
    google = requests.get(f"{live_server}/v1/models", headers={"x-goog-api-key": gateway.key}, timeout=30).json()
    assert [m["name"] for m in google["models"]] == ["models/gpt-4o-mini", "models/text-embedding-3-small"]
    openai_list = requests.get(f"{live_server}/v1/models", headers={"Authorization": f"Bearer {gateway.key}"},
                               timeout=30).json()
    assert openai_list["object"] == "list" and [m["id"] for m in openai_list["data"]] == [
        "gpt-4o-mini", "text-embedding-3-small"]


@pytest.mark.parametrize("path", ["/", "/models", "/v1beta2/models", "/v10/models"])
def test_paths_off_the_api_are_left_to_the_site(app, path):
    with app.test_request_context(path):
        assert api_error_response(404, "not_found", "nothing here") is None
