"""Ordered fallback, visible in headers, receipts and the ledger; driven with the OpenAI SDK."""
from __future__ import annotations

import openai
import pytest

from app.billing.pricing import Price, Usage, charge_micros
from tests.conftest import assert_ledger_green

MINI = Price(150_000, 600_000, 75_000)


def _chat(client, **extra):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Where does my request go?"}], **extra)


def _receipt(client, receipt_id: str) -> dict:
    return client.get(f"/receipts/{receipt_id}", cast_to=object)


def test_primary_serves_and_charges_credit_at_the_official_price(openai_client, gateway):
    raw = _chat(openai_client)
    completion = raw.parse()
    assert raw.headers["X-Waybill-Route"] == "primary"
    assert raw.headers["X-Waybill-Settlement"] == "official"
    assert raw.headers["X-Waybill-Attempts"] == "1"
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    usage = completion.usage
    expected = charge_micros(Usage(usage.prompt_tokens, usage.completion_tokens), MINI)
    assert receipt["status"] == "succeeded" and receipt["fallback_used"] is False
    assert receipt["upstream_model"] == "gpt-4o-mini-2024-07-18"
    assert receipt["usage"] == {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                                "cached_tokens": 0, "source": "reported"}
    assert receipt["ledger_entry"]["wallet"] == "credit"
    assert receipt["ledger_entry"]["amount_usd"] == f"-{expected / 1e6:.6f}"
    assert gateway.balances() == {"credit": (10_000_000 - expected, 0), "routed": (10_000_000, 0)}
    assert_ledger_green()


def test_primary_503_falls_back_to_the_routed_backup(openai_client, gateway):
    gateway.sim.set_fault("primary", status=503)
    raw = _chat(openai_client)
    completion = raw.parse()
    assert raw.headers["X-Waybill-Route"] == "backup"
    assert raw.headers["X-Waybill-Attempts"] == "2"
    assert raw.headers["X-Waybill-Settlement"] == "routed"
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["fallback_used"] is True
    assert receipt["route"] == {"channel": "backup", "label": "Backup relay", "lane": "routed", "position": 2}
    assert [(a["channel"], a["outcome"], a["http_status"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "error", 503, "upstream_5xx"), ("backup", "ok", 200, None)]
    assert receipt["price"] == {"input_per_mtok": "0.225", "output_per_mtok": "0.9",
                                "cached_input_per_mtok": "0.1125", "multiplier": "1.5", "model": "gpt-4o-mini"}
    from fractions import Fraction
    usage = completion.usage
    expected = charge_micros(Usage(usage.prompt_tokens, usage.completion_tokens), MINI, Fraction(3, 2))
    assert receipt["charge_usd"] == f"{expected / 1e6:.6f}"
    assert receipt["ledger_entry"]["wallet"] == "routed"
    assert gateway.balances() == {"credit": (10_000_000, 0), "routed": (10_000_000 - expected, 0)}
    assert_ledger_green()


def test_three_failures_open_the_circuit_then_one_probe_after_the_cooldown(openai_client, gateway, app):
    from datetime import timedelta

    from app.extensions import db
    from app.routing.health import ChannelHealth, forget_cached_health
    gateway.sim.set_fault("primary", status=500)
    for _ in range(3):
        assert _chat(openai_client).headers["X-Waybill-Route"] == "backup"
    assert len(gateway.sim.log("primary")) == 3
    raw = _chat(openai_client)
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["attempts"][0]["outcome"] == "skipped"
    assert receipt["attempts"][0]["error_class"] == "cooling_down"
    assert len(gateway.sim.log("primary")) == 3, "a cooling channel must not be contacted"

    # End the cooldown early (as 30 s passing would), heal the primary: exactly one probe closes it.
    gateway.sim.reset()
    db.session.rollback()
    health = db.session.scalar(db.select(ChannelHealth))
    health.cooldown_until = health.cooldown_until - timedelta(seconds=31)
    db.session.commit()
    forget_cached_health()
    raw = _chat(openai_client)
    assert raw.headers["X-Waybill-Route"] == "primary"
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["attempts"][0]["detail"] == "probe"
    assert len(gateway.sim.log("primary")) == 1
    assert _chat(openai_client).headers["X-Waybill-Route"] == "primary"
    db.session.rollback()
    assert db.session.scalar(db.select(ChannelHealth)).cooldown_until is None
    assert_ledger_green()


def test_upstream_400_is_returned_without_fallback_or_charge(openai_client, gateway):
    gateway.sim.set_fault("primary", status=422)
    with pytest.raises(openai.BadRequestError) as error:
        _chat(openai_client)
    assert error.value.response.headers["x-should-retry"] == "false"
    assert "primary rejected the request (422)" in error.value.message
    assert gateway.sim.log("backup") == []
    assert gateway.balances() == {"credit": (10_000_000, 0), "routed": (10_000_000, 0)}
    assert_ledger_green()


def test_every_route_failing_is_a_502_naming_each_attempt(openai_client, gateway):
    gateway.sim.set_fault("primary", status=503)
    gateway.sim.set_fault("backup", hang=True)
    from app.extensions import db
    from app.routing.models import Channel
    from app.routing.planner import forget_cached_routes
    db.session.scalar(db.select(Channel).where(Channel.name == "backup")).timeout_s = 0.5
    db.session.commit()
    forget_cached_routes()
    with pytest.raises(openai.APIStatusError) as error:
        _chat(openai_client)
    assert error.value.status_code == 502
    receipt_id = error.value.response.headers["X-Waybill-Receipt"]
    assert error.value.body["message"] == f"gpt-4o-mini: primary 503, backup timeout; receipt {receipt_id}"
    receipt = _receipt(openai_client, receipt_id)
    assert (receipt["status"], receipt["failure_stage"], receipt["charge_usd"]) == ("failed", "after_fallback", "0.000000")
    assert gateway.balances() == {"credit": (10_000_000, 0), "routed": (10_000_000, 0)}
    assert_ledger_green()


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_that_is_not_json_or_sse_is_a_bad_response_and_falls_back(openai_client, gateway, stream):
    gateway.sim.set_fault("primary", bad_body=True)
    raw = _chat(openai_client, stream=stream)
    if stream:
        list(raw.parse())
    receipt = _receipt(openai_client, raw.headers["X-Waybill-Receipt"])
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "error", "bad_response"), ("backup", "ok", None)]
    assert receipt["status"] == "succeeded"
    assert_ledger_green()
