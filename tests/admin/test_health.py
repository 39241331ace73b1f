"""/admin/health: the board as a page and as a polled fragment, its buttons confirmed, audited and admin-only."""
from __future__ import annotations

from html import unescape

import pytest

from app.audit_trail.models import AuditEvent
from app.extensions import db
from app.providers.base import ErrorClass
from app.routing.health import ChannelHealth, forget_cached_health, record_failure
from app.routing.models import Channel
from tests.conftest import csrf_from, import_config_text

KEYLESS = """
[[channels]]
name = "keyless"
label = "Keyless relay"
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/keyless/v1"
api_key_env = "WAYBILL_TEST_NEVER_SET"
lane = "routed"
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"
"""


@pytest.fixture
def admin(gateway, login_as):
    return login_as("admin@example.com", admin=True)


def _id(name: str) -> int:
    return db.session.scalar(db.select(Channel.id).where(Channel.name == name))


def _row(html: str, channel_id: int) -> str:
    return html.split(f'id="health-channel-{channel_id}"')[1].split("</tr>")[0]


def _post(client, url: str):
    token = csrf_from(client.get("/admin/channels/1").get_data(as_text=True))
    return client.post(url, data={"csrf_token": token}, headers={"HX-Request": "true"})


def test_the_page_polls_one_fragment_every_two_seconds_while_visible(admin):
    html = admin.get("/admin/health").get_data(as_text=True)
    assert 'aria-current="page">Health' in html
    assert '<div id="health-board" data-poll hx-get="/admin/health" hx-trigger="every 2s, visible"' in html
    fragment = admin.get("/admin/health", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="health-board"') and "<html" not in body
    assert "HX-Request" in fragment.headers["Vary"]
    assert "No channel is failing." in body and "Every published model has a step the gateway can try." in body
    assert "No channel answered as another model than configured in the last 24 h." in body
    primary = _row(body, _id("primary"))
    assert "health-healthy" in primary and "no requests" in primary and "lane-official" in primary


def test_a_keyless_channel_is_flagged_and_a_cooling_one_counts_down(admin, tmp_path, clock):
    import_config_text(KEYLESS, tmp_path)
    backup = _id("backup")
    record_failure(backup, ErrorClass.RATE_LIMITED)
    html = unescape(admin.get("/admin/health").get_data(as_text=True))
    keyless = _row(html, _id("keyless"))
    assert "health-key-missing" in keyless and ">key missing<" in keyless and "Set a key" in keyless
    row = _row(html, backup)
    assert "health-cooling" in row and "30 s left" in row and "Reset cooldown" in row
    assert "Clear key rejected" not in row
    assert 'hx-confirm="Reset the cooldown of backup?' in row
    assert "single channel issue" in html
    clock.advance(10)
    forget_cached_health()
    assert "20 s left" in _row(admin.get("/admin/health", headers={"HX-Request": "true"}).get_data(as_text=True),
                               backup)


def test_the_reset_button_answers_the_updated_board_and_is_audited(admin):
    backup = _id("backup")
    record_failure(backup, ErrorClass.RATE_LIMITED)
    response = _post(admin, f"/admin/health/{backup}/cooldown/reset")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="health-board"')
    assert "health-healthy" in _row(body, backup) and "The cooldown of backup was reset" in body  # flash out of band
    db.session.rollback()
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "cooldown_reset"))
    assert event.subject == "channel backup" and event.actor_id is not None


def test_the_clear_key_rejected_button_is_confirmed_and_audited(admin):
    primary = _id("primary")
    record_failure(primary, ErrorClass.KEY_REJECTED)
    html = unescape(admin.get("/admin/health").get_data(as_text=True))
    row = _row(html, primary)
    assert ">key rejected<" in row and "Clear key rejected" in row
    assert 'hx-confirm="Clear "key rejected" on primary?' in row
    assert "Reset cooldown" not in row
    response = _post(admin, f"/admin/health/{primary}/key-rejected/clear")
    assert response.status_code == 200 and "health-healthy" in _row(response.get_data(as_text=True), primary)
    db.session.rollback()
    assert db.session.get(ChannelHealth, primary).key_rejected is False
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "key_rejected_cleared"))
    assert event.before["key_rejected"] is True and event.after["key_rejected"] is False


def test_the_buttons_need_an_admin_and_a_csrf_token(gateway, login_as, client):
    primary = _id("primary")
    assert client.get("/admin/health").status_code == 302
    login_as("user@example.com")
    assert client.get("/admin/health").status_code == 403
    assert client.post(f"/admin/health/{primary}/cooldown/reset").status_code in (400, 403)
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/keys").get_data(as_text=True))})
    login_as("admin@example.com", admin=True)
    assert client.post(f"/admin/health/{primary}/cooldown/reset").status_code == 400  # no CSRF token
    assert client.post("/admin/health/999/cooldown/reset", data={
        "csrf_token": csrf_from(client.get("/admin/channels/1").get_data(as_text=True))}).status_code == 404
