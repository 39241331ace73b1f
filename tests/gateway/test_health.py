"""Skips, cooldowns, rejected keys, mismatches and lanes, as the planner and receipts show them."""
from __future__ import annotations

from datetime import timedelta

import openai
import pytest

from app.accounts.service import issue_key
from app.database import utcnow
from app.extensions import db
from app.routing.health import ChannelHealth, cooldown_after_trips, forget_cached_health
from app.routing.models import Channel
from app.routing.planner import forget_cached_routes
from tests.conftest import assert_ledger_green


def _chat(client, model="gpt-4o-mini", **extra):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "status?"}], **extra)


def _receipt(client, raw) -> dict:
    return client.get(f"/receipts/{raw.headers['X-Waybill-Receipt']}", cast_to=object)


def _health(name: str) -> ChannelHealth | None:
    db.session.rollback()
    return db.session.scalar(db.select(ChannelHealth).join(Channel, Channel.id == ChannelHealth.channel_id)
                             .where(Channel.name == name))


def _edit_channel(name: str, **values) -> None:
    db.session.rollback()
    channel = db.session.scalar(db.select(Channel).where(Channel.name == name))
    for key, value in values.items():
        setattr(channel, key, value)
    db.session.commit()
    forget_cached_routes()


def test_cooldowns_double_per_trip_up_to_ten_minutes():
    assert [cooldown_after_trips(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]


def test_429_cools_the_channel_for_its_retry_after(openai_client, gateway):
    gateway.sim.set_fault("primary", status=429, retry_after=120, times=1)
    raw = _chat(openai_client)
    assert raw.headers["X-Waybill-Route"] == "backup"
    health = _health("primary")
    left = (health.cooldown_until - utcnow()).total_seconds()
    assert 110 < left <= 120
    receipt = _receipt(openai_client, _chat(openai_client))
    assert receipt["attempts"][0]["error_class"] == "cooling_down"
    assert len(gateway.sim.log("primary")) == 1
    assert_ledger_green()


def test_rejected_key_holds_the_channel_until_the_key_changes(openai_client, gateway, tmp_path):
    from tests.conftest import GATEWAY_CONFIG, import_config_text
    gateway.sim.set_fault("primary", status=401)
    assert _chat(openai_client).headers["X-Waybill-Route"] == "backup"
    assert _health("primary").key_rejected
    gateway.sim.reset()
    receipt = _receipt(openai_client, _chat(openai_client))
    assert receipt["attempts"][0]["error_class"] == "key_rejected"
    assert gateway.sim.log("primary") == []
    import_config_text(GATEWAY_CONFIG.format(sim=gateway.sim.root).replace("sk-primary-secret-1111", "sk-primary-new-3333"),
                       tmp_path)
    raw = _chat(openai_client)
    assert raw.headers["X-Waybill-Route"] == "primary"
    assert gateway.sim.log("primary")[0]["headers"]["authorization"] == "Bearer sk-primary-new-3333"


def test_404_is_a_model_mismatch_and_falls_back(openai_client, gateway):
    gateway.sim.set_fault("primary", status=404)
    receipt = _receipt(openai_client, _chat(openai_client))
    assert receipt["attempts"][0]["error_class"] == "model_mismatch"
    assert receipt["route"]["channel"] == "backup"


def test_observed_mismatch_is_flagged_but_a_dated_snapshot_matches(openai_client, gateway):
    gateway.sim.set_fault("primary", served_model="gpt-4o-mini-2024-07-18")
    assert _receipt(openai_client, _chat(openai_client))["flags"] == []
    gateway.sim.set_fault("primary", served_model="gpt-3.5-turbo")
    receipt = _receipt(openai_client, _chat(openai_client))
    assert receipt["flags"] == ["model_mismatch"]
    assert receipt["attempts"][0]["served_model"] == "gpt-3.5-turbo"
    assert _health("primary").observed_mismatch == "gpt-3.5-turbo"


def test_disabled_and_keyless_channels_are_skipped_with_their_reason(openai_client, gateway):
    _edit_channel("primary", enabled=False)
    receipt = _receipt(openai_client, _chat(openai_client))
    assert [(a["channel"], a["outcome"], a["error_class"]) for a in receipt["attempts"]] == [
        ("primary", "skipped", "disabled"), ("backup", "ok", None)]
    _edit_channel("primary", enabled=True, api_key_encrypted=None, api_key_env="WAYBILL_TEST_UNSET_KEY")
    receipt = _receipt(openai_client, _chat(openai_client))
    assert receipt["attempts"][0]["error_class"] == "key_missing"
    assert gateway.sim.log("primary") == []


def test_a_key_limited_to_one_lane_skips_the_other(gateway, live_server, app):
    from app.accounts.models import User
    user = db.session.get(User, gateway.user_id)
    routed_only = issue_key(user, "routed", lanes=["routed"]).secret
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=routed_only, max_retries=0)
    receipt = _receipt(client, _chat(client))
    assert receipt["attempts"][0]["error_class"] == "lane_not_allowed"
    assert receipt["settlement"] == "routed"


def test_hold_moves_wallets_when_the_fallback_crosses_lanes(openai_client, gateway):
    gateway.sim.set_fault("primary", status=503)
    receipt = _receipt(openai_client, _chat(openai_client, max_tokens=50))
    assert receipt["ledger_entry"]["wallet"] == "routed"
    balances = gateway.balances()
    assert balances["credit"] == (10_000_000, 0)  # its hold was released, nothing charged
    assert balances["routed"][1] == 0
    assert_ledger_green()


def test_a_wallet_too_small_for_the_primary_hold_falls_to_the_other_lane(openai_client, gateway):
    from app.billing.models import Wallet
    db.session.rollback()
    credit = db.session.scalar(db.select(Wallet).where(Wallet.user_id == gateway.user_id, Wallet.kind == "credit"))
    from app.billing.holds import reserve
    reserve(credit.id, credit.balance - 1)  # leave 1 µ$ available on Credit
    receipt = _receipt(openai_client, _chat(openai_client))
    assert (receipt["attempts"][0]["outcome"], receipt["attempts"][0]["error_class"]) == ("skipped", "insufficient_balance")
    assert receipt["settlement"] == "routed"


def test_when_every_usable_step_is_cooling_the_soonest_is_probed(openai_client, gateway):
    now = utcnow()
    db.session.rollback()
    for name, seconds in (("primary", 300), ("backup", 100)):
        channel = db.session.scalar(db.select(Channel).where(Channel.name == name))
        db.session.add(ChannelHealth(channel_id=channel.id, trips=1, cooldown_until=now + timedelta(seconds=seconds)))
    db.session.commit()
    forget_cached_health()
    raw = _chat(openai_client)
    assert raw.headers["X-Waybill-Route"] == "backup"
    receipt = _receipt(openai_client, raw)
    assert [(a["channel"], a["outcome"]) for a in receipt["attempts"]] == [
        ("primary", "skipped"), ("backup", "skipped"), ("backup", "ok")]
    assert receipt["attempts"][2]["detail"] == "probe"
    assert gateway.sim.log("primary") == []
    assert _health("backup").cooldown_until is None  # the successful probe closed it


def test_no_usable_step_is_a_503_with_retry_after_from_the_cooldown(openai_client, gateway):
    _edit_channel("backup", enabled=False)
    db.session.rollback()
    channel = db.session.scalar(db.select(Channel).where(Channel.name == "primary"))
    db.session.add(ChannelHealth(channel_id=channel.id, key_rejected=True, trips=1,
                                 cooldown_until=utcnow() + timedelta(seconds=30)))
    db.session.commit()
    forget_cached_health()
    with pytest.raises(openai.APIStatusError) as error:
        _chat(openai_client)
    assert error.value.status_code == 503
    assert error.value.body["code"] == "no_route_available"
    assert error.value.response.headers["x-should-retry"] == "false"
    assert 29 <= int(error.value.response.headers["Retry-After"]) <= 31
    assert "primary skipped (key_rejected), backup skipped (disabled)" in error.value.body["message"]
    assert gateway.balances() == {"credit": (10_000_000, 0), "routed": (10_000_000, 0)}
    assert_ledger_green()
