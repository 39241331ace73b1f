"""Recovery on a fake clock: cooldown lengths, probes, rejected keys, and holds of long streams."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import requests

from app.billing import holds
from app.billing.models import Hold
from app.extensions import db
from app.routing import health
from app.routing.health import ChannelHealth
from app.routing.models import Channel
from tests.conftest import assert_ledger_green


def _route(client) -> str:
    """The channel that served one request, or the failure status."""
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}])
        return raw.headers["X-Waybill-Route"]
    except openai.APIStatusError as error:
        return str(error.status_code)


def _health(name: str) -> ChannelHealth:
    db.session.rollback()
    return db.session.scalar(db.select(ChannelHealth).join(Channel, Channel.id == ChannelHealth.channel_id)
                             .where(Channel.name == name))


def _channel_id(name: str) -> int:
    return db.session.scalar(db.select(Channel.id).where(Channel.name == name))


def _wait_for(condition, seconds: float = 10) -> bool:
    """Poll a database condition until it holds or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_tripped_channel_cools_exactly_30_s_then_one_probe_closes_it(openai_client, gateway, clock):
    gateway.sim.set_fault("primary", status=500)
    assert [_route(openai_client) for _ in range(3)] == ["backup"] * 3
    gateway.sim.reset()
    clock.advance(29)
    assert _route(openai_client) == "backup"
    assert gateway.sim.log("primary") == [], "still cooling at 29 s"
    clock.advance(2)
    assert _route(openai_client) == "primary"
    assert len(gateway.sim.log("primary")) == 1
    assert _health("primary").cooldown_until is None
    assert_ledger_green()


def test_a_failed_probe_re_trips_at_once_with_double_the_cooldown(openai_client, gateway, clock):
    gateway.sim.set_fault("primary", status=500)
    for _ in range(3):
        _route(openai_client)
    clock.advance(31)
    assert _route(openai_client) == "backup"  # the probe failed
    row = _health("primary")
    assert row.trips == 2
    assert (row.cooldown_until - clock.now()).total_seconds() == 60
    clock.advance(59)
    calls = len(gateway.sim.log("primary"))
    _route(openai_client)
    assert len(gateway.sim.log("primary")) == calls
    assert_ledger_green()


def test_a_rejected_key_is_probed_again_after_its_cooldown(openai_client, gateway, clock):
    gateway.sim.set_fault("primary", status=401)
    assert _route(openai_client) == "backup"
    assert _health("primary").key_rejected
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    receipt = openai_client.get(f"/receipts/{raw.headers['X-Waybill-Receipt']}", cast_to=object)
    assert receipt["attempts"][0]["error_class"] == "key_rejected"
    gateway.sim.reset()  # the provider restored the key
    clock.advance(31)
    assert _route(openai_client) == "primary"
    assert not _health("primary").key_rejected
    assert_ledger_green()


def test_only_one_request_at_a_time_may_probe_a_channel(gateway, app, clock):
    from datetime import timedelta
    channel_id = _channel_id("primary")
    db.session.add(ChannelHealth(channel_id=channel_id, trips=1, cooldown_until=clock.now() + timedelta(seconds=30)))
    db.session.commit()
    assert not health.claim_probe(channel_id, 5), "still cooling"
    assert health.claim_probe(channel_id, 5, before_cooldown_ends=True)
    assert not health.claim_probe(channel_id, 5, before_cooldown_ends=True), "a probe is already running"
    clock.advance(6)
    assert health.claim_probe(channel_id, 5, before_cooldown_ends=True), "the first probe's claim lapsed"


def test_when_all_is_cooling_waiting_requests_share_one_probe_and_escalate_once(gateway, live_server, clock):
    from datetime import timedelta
    for name, seconds in (("primary", 300), ("backup", 100)):
        db.session.add(ChannelHealth(channel_id=_channel_id(name), trips=1,
                                     cooldown_until=clock.now() + timedelta(seconds=seconds)))
    db.session.commit()
    health.forget_cached_health()
    gateway.sim.set_fault("backup", status=500, latency_ms=800)
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=gateway.key, max_retries=0, timeout=30)
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda _: _route(client), range(6)))
    assert sorted(outcomes) == ["502"] + ["503"] * 5
    assert len(gateway.sim.log("backup")) == 1 and gateway.sim.log("primary") == []
    row = _health("backup")
    assert row.trips == 2, "one failed probe, one escalation"
    assert (row.cooldown_until - clock.now()).total_seconds() == 60
    assert_ledger_green()


def test_a_stream_longer_than_the_hold_ttl_keeps_its_hold_alive(gateway, live_server, clock, app):
    ttl = app.config["WAYBILL_HOLD_TTL_S"]
    gateway.sim.set_fault("primary", chunk_delay_ms=300, reply_tokens=10)
    response = requests.post(f"{live_server}/v1/chat/completions", stream=True, timeout=30,
                             headers={"Authorization": f"Bearer {gateway.key}"},
                             json={"model": "gpt-4o-mini", "stream": True,
                                   "messages": [{"role": "user", "content": "a long answer"}]})
    lines = response.iter_lines()
    assert next(line for line in lines if line).startswith(b"data: ")
    db.session.rollback()
    first_deadline = db.session.scalar(db.select(Hold.deadline))
    clock.advance(ttl / 3 + 1)  # the next chunk's heartbeat pushes the deadline out
    assert _wait_for(lambda: db.session.scalar(db.select(Hold.deadline)) > first_deadline), "no heartbeat"
    assert db.session.scalar(db.select(Hold.delivered)) > 0, "the heartbeat records what was delivered"
    clock.advance(ttl - 10)  # now past the hold's first deadline, not its renewed one
    assert holds.sweep() == 0, "sweep must leave a live stream's hold alone"
    db.session.rollback()
    assert db.session.scalar(db.select(Hold.status)) == "open"
    rest = [line for line in lines if line]
    assert rest[-1] == b"data: [DONE]"
    assert "error" not in json.loads(rest[-2][6:])
    db.session.rollback()
    assert db.session.scalar(db.select(Hold.status)) == "settled"
    assert_ledger_green()
