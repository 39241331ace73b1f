"""A channel's state named from its config and the shared health rows, and the three states users see."""
from __future__ import annotations

import pytest

from app.providers.base import ErrorClass
from app.routing.health import record_failure, record_observed_mismatch, record_success
from app.routing.planner import route_table
from app.routing.status import ChannelState, PublicState, channel_status, public_health
from tests.conftest import import_config_text

# One model routed over every kind of channel the states need; nothing here is ever called.
CONFIG = """
[[models]]
id = "gpt-4o-mini"
provider = "openai"
input_per_mtok = 0.15
output_per_mtok = 0.60

[[channels]]
name = "good"
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-good-1111"
lane = "official"
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini-2024-07-18"

[[channels]]
name = "keyless"
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "WAYBILL_TEST_UNSET_KEY"
lane = "official"
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"

[[channels]]
name = "off"
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-off-2222"
lane = "routed"
enabled = false
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"

[[channels]]
name = "unmapped"
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-unmapped-3333"
lane = "routed"
[channels.models]
"other-model" = "other-model"

[[routes]]
model = "gpt-4o-mini"
channels = ["good", "keyless", "off", "unmapped"]
"""


@pytest.fixture
def channels(app, clock, tmp_path, monkeypatch):
    """The route's channels by name, on the fake clock."""
    monkeypatch.delenv("WAYBILL_TEST_UNSET_KEY", raising=False)
    import_config_text(CONFIG, tmp_path)
    return {channel.name: channel for _, channel in route_table().routes["gpt-4o-mini"]}


def status_of(channel, model_id="gpt-4o-mini"):
    return channel_status(channel, model_id)


def test_a_channel_with_no_history_is_healthy(channels):
    status = status_of(channels["good"])
    assert status.state == ChannelState.HEALTHY
    assert status.upstream_model == "gpt-4o-mini-2024-07-18"
    assert public_health(status).state == PublicState.HEALTHY


def test_failures_below_the_trip_are_degraded_and_users_still_see_healthy(channels):
    record_failure(channels["good"].id, ErrorClass.TIMEOUT)
    record_failure(channels["good"].id, ErrorClass.UPSTREAM_5XX)
    status = status_of(channels["good"])
    assert status.state == ChannelState.DEGRADED
    assert status.consecutive_failures == 2
    assert "2 failures in a row" in status.detail and "upstream_5xx" in status.detail
    assert public_health(status).words == "healthy"


def test_a_tripped_circuit_cools_with_its_seconds_counting_down(channels, clock):
    for _ in range(3):
        record_failure(channels["good"].id, ErrorClass.CONNECT)
    status = status_of(channels["good"])
    assert (status.state, status.seconds_left) == (ChannelState.COOLING, 30)
    assert public_health(status).words == "cooling for 30 s"

    clock.advance(12.5)
    assert status_of(channels["good"]).seconds_left == 18  # rounded up: never "0 s" while cooling

    clock.advance(20)
    after = status_of(channels["good"])
    assert after.state == ChannelState.DEGRADED  # cooled down, waiting for the probe that closes it
    assert "probe" in after.detail
    assert public_health(after).state == PublicState.HEALTHY


def test_a_429_cools_for_its_retry_after(channels):
    record_failure(channels["good"].id, ErrorClass.RATE_LIMITED, retry_after=120)
    status = status_of(channels["good"])
    assert (status.state, status.seconds_left) == (ChannelState.COOLING, 120)


def test_a_success_closes_the_circuit(channels, clock):
    for _ in range(3):
        record_failure(channels["good"].id, ErrorClass.TIMEOUT)
    clock.advance(31)
    from app.routing.health import current_health
    record_success(channels["good"].id, was_probe=True, health=current_health()[channels["good"].id])
    assert status_of(channels["good"]).state == ChannelState.HEALTHY


def test_a_rejected_key_stays_rejected_after_its_cooldown(channels, clock):
    record_failure(channels["good"].id, ErrorClass.KEY_REJECTED)
    status = status_of(channels["good"])
    assert (status.state, status.seconds_left) == (ChannelState.KEY_REJECTED, 30)
    seen = public_health(status)
    assert (seen.state, seen.words) == (PublicState.UNAVAILABLE, "unavailable (key rejected)")

    clock.advance(60)
    later = status_of(channels["good"])
    assert (later.state, later.seconds_left) == (ChannelState.KEY_REJECTED, None)


def test_a_missing_key_is_named(channels):
    status = status_of(channels["keyless"])
    assert status.state == ChannelState.KEY_MISSING
    assert public_health(status).words == "unavailable (key missing)"


def test_a_disabled_channel_is_disabled_whatever_its_health(channels):
    for _ in range(3):
        record_failure(channels["off"].id, ErrorClass.TIMEOUT)
    status = status_of(channels["off"])
    assert status.state == ChannelState.DISABLED
    assert public_health(status).words == "unavailable (disabled)"


def test_a_route_step_without_a_mapping_is_a_configured_mismatch(channels):
    status = status_of(channels["unmapped"])
    assert (status.state, status.no_mapping, status.upstream_model) == (ChannelState.MISMATCH, True, None)
    assert public_health(status).words == "unavailable (no mapping)"
    # For the channel alone (the admin board), only its health counts, and it has no failures.
    assert channel_status(channels["unmapped"]).state == ChannelState.HEALTHY


def test_an_observed_mismatch_is_named_and_still_serves(channels):
    record_observed_mismatch(channels["good"].id, "gpt-3.5-turbo")
    status = status_of(channels["good"])
    assert (status.state, status.served_model, status.no_mapping) == (ChannelState.MISMATCH, "gpt-3.5-turbo", False)
    assert "gpt-3.5-turbo" in status.detail
    assert public_health(status).state == PublicState.HEALTHY

    record_observed_mismatch(channels["good"].id, None)
    assert status_of(channels["good"]).state == ChannelState.HEALTHY


def test_an_upstream_404_for_the_model_is_a_mismatch(channels):
    record_failure(channels["good"].id, ErrorClass.MODEL_MISMATCH)
    status = status_of(channels["good"])
    assert status.state == ChannelState.MISMATCH and not status.no_mapping
    assert public_health(status).state == PublicState.HEALTHY


def test_the_states_are_the_health_boards_words():
    assert [str(state) for state in ChannelState] == [
        "healthy", "degraded", "cooling", "key missing", "key rejected", "disabled", "mismatch"]
