"""Every row of the contract's error table, plus the /v1 read endpoints, seen by real clients."""
from __future__ import annotations

import json
from datetime import timedelta

import openai
import pytest
import requests

from app.accounts.models import ApiKey, User
from app.accounts.service import hash_key, issue_key, revoke_key
from app.database import utcnow
from app.extensions import db
from tests.conftest import assert_ledger_green

QUESTION = [{"role": "user", "content": "What does this cost?"}]
# A retry cannot fix these; 502 and 503 come after Waybill has already tried every route.
NOT_RETRYABLE = {400, 401, 402, 403, 404, 413, 502, 503}


def _balances(user_id: int) -> dict[str, tuple[int, int]]:
    from app.billing.wallets import wallets_of
    db.session.rollback()
    return {kind: (w.balance, w.reserved) for kind, w in wallets_of(user_id).items()}


def _client(live_server: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server}/v1", api_key=key, max_retries=0, timeout=30)


def _chat(client: openai.OpenAI, **extra):
    return client.chat.completions.create(model=extra.pop("model", "gpt-4o-mini"),
                                          messages=extra.pop("messages", QUESTION), **extra)


def _key_of(secret: str) -> ApiKey:
    db.session.rollback()
    return db.session.scalar(db.select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))


def _update_key(key_id: int, **values) -> None:
    db.session.rollback()
    key = db.session.get(ApiKey, key_id)
    for name, value in values.items():
        setattr(key, name, value)
    db.session.commit()


def _user(user_id: int) -> User:
    db.session.rollback()
    return db.session.get(User, user_id)


def _disable(*channels: str) -> None:
    from app.routing.models import Channel
    from app.routing.planner import forget_cached_routes
    db.session.rollback()
    for channel in db.session.scalars(db.select(Channel).where(Channel.name.in_(channels))):
        channel.enabled = False
    db.session.commit()
    forget_cached_routes()


def _sdk_error(call) -> tuple[int, str, object]:
    """Status, body text and headers of an error the SDK raised."""
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    response = caught.value.response
    return response.status_code, response.text, response.headers


def _check(status: int, text: str, headers, expected_status: int, code: str, authenticated: bool = True,
           owner_client: openai.OpenAI | None = None) -> dict | None:
    """The shared assertions of a row: status, envelope, retry hint, receipt header; returns the receipt."""
    assert status == expected_status, text[:500]
    envelope = json.loads(text)
    error = envelope["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert "param" in error and error["param"] is None, "OpenAI's schema requires param, null when none applies"
    if expected_status in NOT_RETRYABLE:
        assert headers.get("x-should-retry") == "false"
    else:
        assert headers.get("x-should-retry") != "false", "a retry may fix this one"
    if not authenticated:
        return None
    receipt_id = headers.get("X-Waybill-Receipt")
    assert receipt_id and receipt_id.startswith("rcpt_")
    if owner_client is None:
        return None
    receipt = owner_client.get(f"/receipts/{receipt_id}", cast_to=object)
    assert receipt["id"] == receipt_id
    assert receipt["status"] in ("rejected", "failed")
    assert receipt["charge_usd"] == "0.000000" and receipt["ledger_entry"] is None
    return receipt


def _message(text: str) -> str:
    return json.loads(text)["error"]["message"]


# --- 400 invalid_request -------------------------------------------------------------------------

def test_malformed_json_is_400_invalid_request(gateway, live_server, openai_client):
    before = gateway.balances()
    response = requests.post(f"{live_server}/v1/chat/completions", data=b'{"model": "gpt-4o-mini", "messages": [',
                             headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"},
                             timeout=30)
    _check(response.status_code, response.text, response.headers, 400, "invalid_request",
           owner_client=openai_client)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_missing_messages_is_400_invalid_request(gateway, openai_client):
    before = gateway.balances()
    status, text, headers = _sdk_error(
        lambda: openai_client.post("/chat/completions", body={"model": "gpt-4o-mini"}, cast_to=object))
    _check(status, text, headers, 400, "invalid_request", owner_client=openai_client)
    assert "messages" in _message(text)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_negative_max_tokens_is_400_invalid_request(gateway, openai_client):
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(openai_client, max_tokens=-5))
    _check(status, text, headers, 400, "invalid_request", owner_client=openai_client)
    assert "max_tokens" in _message(text)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


# --- 401 invalid_api_key -------------------------------------------------------------------------

def test_missing_key_is_401(gateway, live_server):
    before = gateway.balances()
    response = requests.post(f"{live_server}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                             timeout=30)
    _check(response.status_code, response.text, response.headers, 401, "invalid_api_key", authenticated=False)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_unknown_key_is_401(gateway, live_server):
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(_client(live_server, "wb-not-a-real-key")))
    _check(status, text, headers, 401, "invalid_api_key", authenticated=False)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_revoked_key_is_401(gateway, live_server):
    issued = issue_key(_user(gateway.user_id), "to revoke")
    client = _client(live_server, issued.secret)
    assert client.models.list().data, "the key works before it is revoked"
    assert revoke_key(gateway.user_id, issued.key.id)
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(client))
    _check(status, text, headers, 401, "invalid_api_key", authenticated=False)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_expired_key_is_401(gateway, live_server):
    issued = issue_key(_user(gateway.user_id), "to expire")
    _update_key(issued.key.id, expires_at=utcnow() - timedelta(minutes=1))
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(_client(live_server, issued.secret)))
    _check(status, text, headers, 401, "invalid_api_key", authenticated=False)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


# --- 402 ---------------------------------------------------------------------------------------

def test_wallets_too_small_for_the_hold_is_402_naming_them(gateway, live_server, make_user):
    poor = make_user("poor@example.com", credit_usd="0.000001", routed_usd="0.000001")
    client = _client(live_server, issue_key(poor, "poor").secret)
    before, rich_before = _balances(poor.id), gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(client))
    receipt = _check(status, text, headers, 402, "insufficient_balance", owner_client=client)
    message = _message(text)
    assert "credit" in message and "routed" in message, message
    assert "max_tokens" in message
    assert headers["X-Waybill-Receipt"] in message
    assert receipt["status"] == "rejected"
    assert gateway.sim.log() == [], "nothing is sent upstream without a hold"
    assert _balances(poor.id) == before
    assert gateway.balances() == rich_before
    assert_ledger_green()


def test_key_spend_cap_reached_is_402(gateway, openai_client):
    _update_key(_key_of(gateway.key).id, spend_cap=1, spent=1)
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(openai_client))
    _check(status, text, headers, 402, "key_spend_cap", owner_client=openai_client)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


# --- 403, 404, 413 -----------------------------------------------------------------------------

def test_model_outside_the_key_scope_is_403(gateway, live_server):
    client = _client(live_server, issue_key(_user(gateway.user_id), "embeddings only",
                                            models=["text-embedding-3-small"]).secret)
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(client))
    _check(status, text, headers, 403, "model_not_allowed", owner_client=client)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_unknown_model_is_404(gateway, openai_client):
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(openai_client, model="no-such-model"))
    _check(status, text, headers, 404, "model_not_found", owner_client=openai_client)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_body_over_the_limit_is_413(gateway, openai_client, app):
    app.config["MAX_CONTENT_LENGTH"] = 2000
    before = gateway.balances()
    big = [{"role": "user", "content": "x" * 5000}]
    status, text, headers = _sdk_error(lambda: _chat(openai_client, messages=big))
    _check(status, text, headers, 413, "request_too_large", owner_client=openai_client)
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


# --- 429 ---------------------------------------------------------------------------------------

def test_requests_over_the_key_rpm_limit_are_429_with_retry_after(gateway, openai_client):
    _update_key(_key_of(gateway.key).id, rpm_limit=1)
    _chat(openai_client)
    assert len(gateway.sim.log("primary")) == 1
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(openai_client))
    _check(status, text, headers, 429, "rate_limited", owner_client=openai_client)
    assert int(headers["Retry-After"]) > 0
    assert len(gateway.sim.log("primary")) == 1, "a rate-limited request never reaches an upstream"
    assert gateway.balances() == before
    assert_ledger_green()


# --- 502, 503 ----------------------------------------------------------------------------------

def test_every_channel_failing_is_502_naming_each_attempt(gateway, openai_client):
    gateway.sim.set_fault("primary", status=503)
    gateway.sim.set_fault("backup", status=503)
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(openai_client))
    receipt = _check(status, text, headers, 502, "all_routes_failed", owner_client=openai_client)
    receipt_id = headers["X-Waybill-Receipt"]
    assert _message(text) == f"gpt-4o-mini: primary 503, backup 503; receipt {receipt_id}"
    assert receipt["status"] == "failed"
    assert [(a["channel"], a["outcome"], a["http_status"]) for a in receipt["attempts"]] == [
        ("primary", "error", 503), ("backup", "error", 503)]
    assert gateway.balances() == before
    assert_ledger_green()


def test_every_channel_disabled_is_503_no_route_available(gateway, openai_client):
    _disable("primary", "backup")
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(openai_client))
    receipt = _check(status, text, headers, 503, "no_route_available", owner_client=openai_client)
    assert "disabled" in _message(text)
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "skipped", "disabled"), ("backup", "skipped", "disabled")]
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


def test_key_lanes_excluding_every_usable_step_is_503(gateway, live_server):
    client = _client(live_server, issue_key(_user(gateway.user_id), "routed only", lanes=["routed"]).secret)
    _disable("backup")
    before = gateway.balances()
    status, text, headers = _sdk_error(lambda: _chat(client))
    receipt = _check(status, text, headers, 503, "no_route_available", owner_client=client)
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "skipped", "lane_not_allowed"), ("backup", "skipped", "disabled")]
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()


# --- the read endpoints ------------------------------------------------------------------------

def test_someone_elses_receipt_is_404(gateway, live_server, openai_client, make_user):
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=QUESTION)
    receipt_id = raw.headers["X-Waybill-Receipt"]
    assert openai_client.get(f"/receipts/{receipt_id}", cast_to=object)["id"] == receipt_id
    stranger = make_user("stranger@example.com")
    stranger_client = _client(live_server, issue_key(stranger, "stranger").secret)
    with pytest.raises(openai.NotFoundError) as caught:
        stranger_client.get(f"/receipts/{receipt_id}", cast_to=object)
    body = caught.value.response.json()
    assert "attempts" not in body and "route" not in body and "error" in body, "nothing of the receipt leaks"
    with pytest.raises(openai.NotFoundError):
        openai_client.get("/receipts/rcpt_000000000000000000000000", cast_to=object)


def test_models_lists_only_the_models_of_the_key(gateway, live_server, openai_client):
    assert sorted(m.id for m in openai_client.models.list().data) == ["gpt-4o-mini", "text-embedding-3-small"]
    scoped = _client(live_server, issue_key(_user(gateway.user_id), "embeddings only",
                                            models=["text-embedding-3-small"]).secret)
    assert [m.id for m in scoped.models.list().data] == ["text-embedding-3-small"]


def test_wallets_show_both_balances_with_reserved_and_available(gateway, openai_client):
    from app.billing import holds
    from app.billing.wallets import wallet_of
    hold = holds.reserve(wallet_of(gateway.user_id, "credit").id, 2_500_000, memo="test hold")
    try:
        data = openai_client.get("/wallets", cast_to=object)["data"]
    finally:
        holds.void(hold.id)
    by_kind = {w["wallet"]: w for w in data}
    assert set(by_kind) == {"credit", "routed"}
    assert (by_kind["credit"]["balance_usd"], by_kind["credit"]["reserved_usd"],
            by_kind["credit"]["available_usd"]) == ("10.000000", "2.500000", "7.500000")
    assert (by_kind["routed"]["balance_usd"], by_kind["routed"]["reserved_usd"],
            by_kind["routed"]["available_usd"]) == ("10.000000", "0.000000", "10.000000")
    assert_ledger_green()


def test_a_session_cookie_never_authenticates_v1(gateway, login_as):
    client = login_as("api@example.com")
    assert client.get("/").status_code == 200, "the cookie does sign the user in to the pages"
    before = gateway.balances()
    for response in (client.get("/v1/models"), client.get("/v1/wallets"),
                     client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION})):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "invalid_api_key"
        assert response.headers.get("x-should-retry") == "false"
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    assert_ledger_green()
