"""The health board's service: figures from real attempts per window, countdowns, incidents, mismatches, actions."""
from __future__ import annotations

import openai

from app.audit_trail.models import AuditEvent
from app.database import utcnow
from app.extensions import db
from app.providers.base import ErrorClass
from app.gateway.board import health_board, percentile, clear_rejected_key, reset_cooldown
from app.routing.health import ChannelHealth, forget_cached_health, record_failure
from app.routing.models import Channel
from app.routing.status import ChannelState
from tests.conftest import import_config_text


def _chat(client, model="gpt-4o-mini") -> bool:
    """One request through the gateway; True if it was answered."""
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "How are you?"}])
        return True
    except openai.APIStatusError:
        return False


def _board():
    db.session.rollback()  # see what the live server's threads committed
    forget_cached_health()
    return health_board()


def _row(board, name):
    return next(row for row in board.rows if row.channel.name == name)


def _channel_id(name: str) -> int:
    return db.session.scalar(db.select(Channel.id).where(Channel.name == name))


def test_percentile_is_the_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50, 95)


def test_figures_count_answered_and_failed_attempts_per_window_and_never_skipped_ones(openai_client, gateway, clock):
    gateway.sim.set_fault("primary", status=500, times=1)
    assert _chat(openai_client)  # primary fails once, the backup answers
    assert _chat(openai_client)  # the primary answers
    board = _board()
    primary, backup = _row(board, "primary"), _row(board, "backup")
    for window in ("5 min", "1 h"):
        assert (primary.figures[window].requests, primary.figures[window].ok) == (2, 1)
        assert primary.figures[window].success_rate == 0.5
        assert (backup.figures[window].requests, backup.figures[window].ok) == (1, 1)
        assert backup.figures[window].p50_ms is not None
        assert backup.figures[window].p50_ms <= backup.figures[window].p95_ms
    assert primary.last_error_class == "upstream_5xx" and primary.last_error_words == "Upstream server error"

    clock.advance(10 * 60)
    board = _board()
    assert "5 min" not in _row(board, "primary").figures or _row(board, "primary").figures["5 min"].requests == 0
    assert _row(board, "primary").figures["1 h"].requests == 2
    clock.advance(60 * 60)
    assert _row(_board(), "primary").figures == {}

    # Three failures open the circuit; the next request skips the primary, which is no request to it.
    gateway.sim.set_fault("primary", status=500)
    for _ in range(4):
        assert _chat(openai_client)
    clock.advance(3)  # past the board's cache
    primary = _row(_board(), "primary")
    assert primary.figures["5 min"].requests == 3 and primary.figures["5 min"].ok == 0
    assert primary.figures["5 min"].p50_ms is None


def test_the_figures_are_computed_once_per_two_seconds(openai_client, gateway, clock):
    assert _chat(openai_client)
    assert _row(_board(), "primary").figures["5 min"].requests == 1
    assert _chat(openai_client)
    assert _row(_board(), "primary").figures["5 min"].requests == 1, "served from the board's cache"
    clock.advance(2)
    assert _row(_board(), "primary").figures["5 min"].requests == 2


def test_a_tripped_channel_is_cooling_with_a_countdown_that_moves_with_the_clock(openai_client, gateway, clock):
    gateway.sim.set_fault("primary", status=500)
    for _ in range(3):
        assert _chat(openai_client)
    primary = _row(_board(), "primary")
    assert primary.status.state == ChannelState.COOLING and primary.status.seconds_left == 30
    assert primary.failing and primary.can_reset_cooldown and not primary.can_clear_rejected
    clock.advance(12)
    assert _row(_board(), "primary").status.seconds_left == 18
    clock.advance(20)
    primary = _row(_board(), "primary")
    assert primary.status.state == ChannelState.DEGRADED and primary.failing, "awaiting its probe"


def test_every_channel_of_one_provider_failing_is_a_provider_wide_incident(openai_client, providers):
    # openai-compatible has two channels, backup and relay-c; the primary is the only openai channel.
    for channel in ("backup", "relay-c"):
        providers.sim.set_fault(channel, status=500)
    providers.sim.set_fault("primary", status=500, times=1)
    assert not _chat(openai_client)  # primary and backup both fail
    assert not _chat(openai_client, "text-only-model")  # relay-c fails
    board = _board()
    assert [(i.kind, i.name, i.channels) for i in board.incidents] == [
        ("provider", "openai-compatible", ["backup", "relay-c"])]
    assert _row(board, "backup").incident == "provider openai-compatible"
    # A failing channel alone on its provider is a single channel issue, not an incident.
    assert [row.channel.name for row in board.single_issues] == ["primary"]
    assert _row(board, "claude-direct").failing is False


def test_every_channel_on_one_host_failing_is_a_host_incident_and_keyless_channels_do_not_count(
        openai_client, gateway, tmp_path):
    for channel in ("primary", "backup"):
        gateway.sim.set_fault(channel, status=500)
    assert not _chat(openai_client)
    board = _board()
    assert [(i.kind, i.name) for i in board.incidents] == [("host", "127.0.0.1")]
    assert board.single_issues == []

    # A keyless channel on the same host is not "every channel with a key": the incident stands.
    import_config_text(f"""
[[channels]]
name = "keyless"
provider = "openai"
base_url = "{gateway.sim.root}/keyless/v1"
api_key_env = "WAYBILL_TEST_NEVER_SET"
lane = "routed"
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"
""", tmp_path)
    board = _board()
    assert _row(board, "keyless").status.state == ChannelState.KEY_MISSING and not _row(board, "keyless").failing
    assert [(i.kind, i.name, i.channels) for i in board.incidents] == [("host", "127.0.0.1", ["primary", "backup"])]


def test_models_with_no_usable_route_are_listed_but_cooling_steps_still_count(openai_client, gateway, tmp_path):
    gateway.sim.set_fault("primary", status=500)
    gateway.sim.set_fault("backup", status=500)
    for _ in range(3):
        _chat(openai_client)
    board = _board()
    assert _row(board, "primary").status.state == ChannelState.COOLING
    assert board.unusable == [], "cooling steps are probed, so the route is still usable"

    record_failure(_channel_id("primary"), ErrorClass.KEY_REJECTED)
    with db.session.begin():
        db.session.get(Channel, _channel_id("backup")).enabled = False
    from app.routing.planner import forget_cached_routes
    forget_cached_routes()
    board = _board()
    assert [(m.model_id, m.reasons) for m in board.unusable] == [
        ("gpt-4o-mini", ["primary: key rejected", "backup: disabled"]),
        ("text-embedding-3-small", ["primary: key rejected", "backup: disabled"])]
    assert _row(board, "primary").can_clear_rejected


def test_a_published_model_without_a_route_has_no_usable_route(gateway, tmp_path):
    import_config_text("""
[[models]]
id = "lonely-model"
provider = "openai"
input_per_mtok = 1.0
output_per_mtok = 1.0
""", tmp_path)
    assert [(m.model_id, m.reasons) for m in _board().unusable] == [("lonely-model", ["no route"])]


def test_observed_mismatches_are_counted_with_when_last_seen(openai_client, gateway):
    gateway.sim.set_fault("primary", served_model="gpt-4o")
    assert _chat(openai_client) and _chat(openai_client)
    gateway.sim.reset()
    # A dated snapshot of the configured model is the same model: no mismatch.
    gateway.sim.set_fault("backup", served_model="gpt-4o-mini-2024-07-18")
    gateway.sim.set_fault("primary", status=500, times=1)
    assert _chat(openai_client)
    board = _board()
    assert [(m.channel, m.configured, m.served, m.count) for m in board.mismatches] == [
        ("primary", "gpt-4o-mini-2024-07-18", "gpt-4o", 2)]
    assert (utcnow() - board.mismatches[0].last_seen).total_seconds() < 60


def test_reset_cooldown_and_clear_key_rejected_are_audited(openai_client, gateway, make_user):
    admin = make_user("admin@example.com", admin=True)
    gateway.sim.set_fault("primary", status=500)
    for _ in range(3):
        _chat(openai_client)
    db.session.rollback()
    primary_id = _channel_id("primary")
    reset_cooldown(admin.id, primary_id)
    assert _row(_board(), "primary").status.state == ChannelState.HEALTHY
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "cooldown_reset"))
    assert event.actor_id == admin.id and event.subject == "channel primary"
    assert event.before["cooldown_until"] is not None and event.after["cooldown_until"] is None

    record_failure(primary_id, ErrorClass.KEY_REJECTED)
    assert _row(_board(), "primary").status.state == ChannelState.KEY_REJECTED
    clear_rejected_key(admin.id, primary_id)
    assert _row(_board(), "primary").status.state == ChannelState.HEALTHY
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "key_rejected_cleared"))
    assert (event.before["key_rejected"], event.after["key_rejected"]) == (True, False)
    assert db.session.get(ChannelHealth, primary_id).key_rejected is False
