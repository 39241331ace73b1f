"""No charge exceeds what the client allowed; one tenant cannot move another's route; money errors say money."""
from __future__ import annotations

import openai
import pytest

from app.accounts.service import issue_key
from app.billing.models import Hold
from app.billing.pricing import Price, Usage, charge_micros
from app.extensions import db
from app.gateway.models import Receipt
from app.gateway.parsing import estimate_tokens
from app.routing.health import ChannelHealth
from app.routing.models import Channel
from tests.conftest import assert_ledger_green, receipt_of

MINI = Price(150_000, 600_000, 75_000)


def _chat(client, content="bounds", **extra):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": content}], **extra)


def _hold_of(receipt_id: str) -> Hold:
    db.session.rollback()
    return db.session.get(Hold, db.session.get(Receipt, receipt_id).hold_id)


def test_usage_beyond_the_models_max_output_is_capped_and_flagged(openai_client, gateway):
    gateway.sim.set_fault("primary", reply_tokens=5_000)  # no max_tokens: the bound is the max output, 1000
    receipt = receipt_of(openai_client, _chat(openai_client).headers["X-Waybill-Receipt"])
    assert receipt["usage"]["completion_tokens"] == 1_000
    assert "usage_capped" in receipt["flags"] and "underpaid" not in receipt["flags"]
    assert_ledger_green()


def test_an_estimate_made_without_usage_obeys_the_same_bound(openai_client, gateway):
    gateway.sim.set_fault("primary", reply_tokens=5_000, omit_usage=True)
    receipt = receipt_of(openai_client, _chat(openai_client).headers["X-Waybill-Receipt"])
    assert receipt["usage"]["source"] == "estimated"
    assert receipt["usage"]["completion_tokens"] == 1_000
    assert "usage_capped" in receipt["flags"]
    assert_ledger_green()


def test_the_hold_covers_every_choice_asked_for(openai_client, gateway):
    raw = _chat(openai_client, n=5, max_tokens=100)
    hold = _hold_of(raw.headers["X-Waybill-Receipt"])
    prompt = estimate_tokens('[{"role":"user","content":"bounds"}]')
    assert hold.amount == charge_micros(Usage(prompt, 500), MINI)
    assert_ledger_green()


def test_a_failed_step_and_a_step_skipped_for_money_answer_402_naming_both(gateway, live_server, make_user):
    user = make_user("creditonly@example.com", credit_usd="5")  # nothing in the routed wallet
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=issue_key(user, "c").secret, max_retries=0)
    gateway.sim.set_fault("primary", status=503)
    with pytest.raises(openai.APIStatusError) as error:
        _chat(client)
    assert (error.value.status_code, error.value.body["code"]) == (402, "insufficient_balance")
    message = error.value.body["message"]
    assert "primary 503" in message and "backup skipped (insufficient_balance)" in message
    assert "routed needs $" in message
    assert_ledger_green()


def _health(name: str) -> ChannelHealth | None:
    db.session.rollback()
    return db.session.scalar(db.select(ChannelHealth).join(Channel, Channel.id == ChannelHealth.channel_id)
                             .where(Channel.name == name))


def test_one_keys_failures_do_not_open_a_circuit_other_keys_use(gateway, live_server, make_user, openai_client):
    assert _chat(openai_client).headers["X-Waybill-Route"] == "primary"  # another tenant uses the primary
    attacker = make_user("attacker@example.com", credit_usd="5", routed_usd="5")
    hostile = openai.OpenAI(base_url=f"{live_server}/v1", api_key=issue_key(attacker, "a").secret, max_retries=0)
    gateway.sim.set_fault("primary", status=500, times=5)
    for _ in range(5):
        assert _chat(hostile).headers["X-Waybill-Route"] == "backup"
    health = _health("primary")
    assert health.cooldown_until is None and health.consecutive_failures == 5
    assert _chat(openai_client).headers["X-Waybill-Route"] == "primary", "the other tenant keeps its route"
    assert_ledger_green()


def test_failures_from_two_keys_do_open_the_circuit(gateway, live_server, make_user, openai_client):
    other = make_user("other@example.com", credit_usd="5", routed_usd="5")
    second = openai.OpenAI(base_url=f"{live_server}/v1", api_key=issue_key(other, "b").secret, max_retries=0)
    gateway.sim.set_fault("primary", status=500)
    for client in (openai_client, second, openai_client):
        assert _chat(client).headers["X-Waybill-Route"] == "backup"
    assert _health("primary").cooldown_until is not None
    assert_ledger_green()


def test_a_key_alone_on_a_channel_still_trips_it(openai_client, gateway):
    gateway.sim.set_fault("primary", status=500)
    for _ in range(3):
        _chat(openai_client)
    assert _health("primary").cooldown_until is not None
    assert_ledger_green()


def test_a_cjk_prompt_is_held_at_no_less_than_it_costs(openai_client, gateway):
    raw = _chat(openai_client, content="价格走势" * 5_000, max_tokens=10)  # 20,000 characters, a token each
    receipt = receipt_of(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["usage"]["prompt_tokens"] >= 20_000
    charged = int(receipt["charge_usd"].replace(".", ""))
    assert _hold_of(raw.headers["X-Waybill-Receipt"]).amount >= charged
    assert receipt["flags"] == []
    assert_ledger_green()
