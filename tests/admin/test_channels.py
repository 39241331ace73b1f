"""/admin/channels: lanes, write-only keys, the shared config checks, the test button, every change audited."""
from __future__ import annotations

import re
from html import unescape

import pytest

from app.audit_trail.models import AuditEvent
from app.billing.models import Hold, LedgerEntry
from app.extensions import db
from app.gateway.models import Receipt
from app.providers.base import ErrorClass
from app.routing.health import ChannelHealth, record_failure
from app.routing.keys import resolve_key
from app.routing.models import Channel
from app.routing.planner import route_table
from tests.conftest import assert_ledger_green, csrf_from, import_config_text

NEW_KEY = "sk-admin-typed-secret-key-9876"


@pytest.fixture
def admin(gateway, login_as):
    """The gateway's world (channels primary and backup) with an admin signed in."""
    return login_as("admin@example.com", admin=True)


def _channel(name: str) -> Channel:
    db.session.rollback()
    return db.session.scalar(db.select(Channel).where(Channel.name == name))


def _events(action: str | None = None) -> list[AuditEvent]:
    db.session.rollback()
    query = db.select(AuditEvent).order_by(AuditEvent.id)
    return list(db.session.scalars(query.where(AuditEvent.action == action) if action else query))


def _form(channel: Channel | None = None, **changes) -> dict:
    """A channel form as the browser posts it, from a channel's settings (or a new routed relay)."""
    data = {"name": "relay-z", "label": "Relay Z", "provider": "openai-compatible",
            "base_url": "http://127.0.0.1:9/v1", "lane": "routed", "price_multiplier": "1.25", "timeout_s": "30",
            "enabled": "y", "api_key": "", "api_key_env": "",
            "models-0-public": "gpt-4o-mini", "models-0-upstream": "openai/gpt-4o-mini", "action": "save"}
    if channel is not None:
        data.update({"name": channel.name, "label": channel.label, "provider": channel.provider,
                     "base_url": channel.base_url, "lane": channel.lane,
                     "price_multiplier": channel.price_multiplier_text, "timeout_s": str(channel.timeout_s)})
        for index, (public, upstream) in enumerate(sorted(channel.model_map.items())):
            data[f"models-{index}-public"], data[f"models-{index}-upstream"] = public, upstream
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def _post(client, url: str, data: dict, htmx: bool = False):
    token = csrf_from(client.get("/admin/channels/new").get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token}, headers={"HX-Request": "true"} if htmx else {})


def test_the_list_groups_channels_by_lane_with_provider_base_url_state_key_and_models(admin, tmp_path):
    import_config_text("""
[[channels]]
name = "env-relay"
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/env/v1"
api_key_env = "WAYBILL_TEST_NEVER_SET"
lane = "routed"
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"
""", tmp_path)
    html = admin.get("/admin/channels").get_data(as_text=True)
    official, routed = html.split('id="lane-official"')[1].split('id="lane-routed"')
    assert 'id="channel-1"' in official and "Primary (official)" in official and "openai ·" in official
    assert 'id="channel-2"' in routed and "Backup relay" in routed and 'id="channel-3"' in routed
    assert "/primary/v1" in official  # admins see the base URL
    assert "set, ends …1111" in official and "set, ends …2222" in routed
    assert "gpt-4o-mini-2024-07-18" in official
    row = routed.split('id="channel-3"')[1]
    assert "missing: $WAYBILL_TEST_NEVER_SET is not set" in row and "key-flag" in row
    assert "health-key-missing" in row
    assert "Key missing:" in html and "env-relay" in html.split('id="keyless-channels"')[1].split("</p>")[0]


def test_a_new_channel_is_created_with_its_key_encrypted_and_audited_as_set(admin):
    response = _post(admin, "/admin/channels/new", _form(api_key=NEW_KEY), htmx=True)
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/admin/channels"
    channel = _channel("relay-z")
    assert (channel.label, channel.lane, channel.price_multiplier_text, channel.timeout_s) == \
        ("Relay Z", "routed", "1.25", 30.0)
    assert channel.model_map == {"gpt-4o-mini": "openai/gpt-4o-mini"}
    assert resolve_key(channel) == NEW_KEY and NEW_KEY.encode() not in channel.api_key_encrypted
    [event] = _events("channel_created")
    assert event.subject == "channel relay-z" and event.after["key"] == "set" and event.before is None
    assert NEW_KEY not in str(event.after)
    page = admin.get("/admin/channels").get_data(as_text=True)
    assert "Channel relay-z created." in page and "set, ends …9876" in page


def test_the_key_never_appears_in_any_admin_page(admin):
    channel = _channel("primary")
    response = _post(admin, f"/admin/channels/{channel.id}", _form(channel, api_key=NEW_KEY))
    assert response.status_code == 303
    # Also a refused save: the typed key must not be echoed back into the form.
    refused = _post(admin, f"/admin/channels/{channel.id}", _form(channel, api_key=NEW_KEY, timeout_s="0"))
    assert refused.status_code == 422
    pages = [refused.get_data(as_text=True)]
    for url in ["/admin/channels", f"/admin/channels/{channel.id}", "/admin/routes", "/admin/channels/new", "/admin/"]:
        pages.append(admin.get(url).get_data(as_text=True))
    tested = _post(admin, f"/admin/channels/{channel.id}/test", {}, htmx=True)
    pages.append(tested.get_data(as_text=True))
    secret_part = NEW_KEY[:-4]
    for html in pages:
        assert NEW_KEY not in html and secret_part not in html
        assert "sk-primary-secret" not in html and "sk-backup-secret" not in html
    assert "set, ends …9876" in pages[1]
    assert all(NEW_KEY not in str((e.before, e.after)) for e in _events())


def test_replacing_a_key_clears_key_rejected_and_is_audited_without_its_value(admin):
    channel = _channel("primary")
    record_failure(channel.id, ErrorClass.KEY_REJECTED)
    assert db.session.get(ChannelHealth, channel.id).key_rejected
    assert "key rejected" in admin.get("/admin/channels").get_data(as_text=True)
    _post(admin, f"/admin/channels/{channel.id}", _form(channel, api_key=NEW_KEY))
    db.session.rollback()
    health = db.session.get(ChannelHealth, channel.id)
    assert not health.key_rejected and health.cooldown_until is None
    assert resolve_key(_channel("primary")) == NEW_KEY
    [event] = _events("channel_key_set")
    assert (event.before, event.after) == ({"key": "set"}, {"key": "set"})
    assert _events("channel_updated") == []  # nothing else changed
    # The gateway sees the new key at once: this process's cached table was dropped.
    assert route_table().routes["gpt-4o-mini"][0][1].api_key == NEW_KEY


def test_an_empty_key_field_keeps_the_key_and_an_edit_records_only_what_changed(admin):
    channel = _channel("backup")
    response = _post(admin, f"/admin/channels/{channel.id}", _form(channel, label="Relay B", price_multiplier="1.75"))
    assert response.status_code == 303
    assert resolve_key(_channel("backup")) == "sk-backup-secret-2222"
    [event] = _events("channel_updated")
    assert event.before == {"label": "Backup relay", "price_multiplier": "1.5"}
    assert event.after == {"label": "Relay B", "price_multiplier": "1.75"}
    assert _events("channel_key_set") == []
    assert route_table().routes["gpt-4o-mini"][1][1].label == "Relay B"


def test_clearing_the_key_flags_the_channel_and_is_audited(admin):
    channel = _channel("backup")
    page = admin.get(f"/admin/channels/{channel.id}").get_data(as_text=True)
    assert "hx-confirm=\"Clear the key of backup?" in page
    response = _post(admin, f"/admin/channels/{channel.id}/key/clear", {}, htmx=True)
    assert response.status_code == 200 and 'id="channel-key"' in response.get_data(as_text=True)
    assert "⚠ missing" in response.get_data(as_text=True)
    cleared = _channel("backup")
    assert cleared.api_key_encrypted is None and cleared.api_key_last4 is None and resolve_key(cleared) is None
    [event] = _events("channel_key_cleared")
    assert (event.before, event.after) == ({"key": "set"}, {"key": "cleared"})
    listing = admin.get("/admin/channels").get_data(as_text=True)
    assert "Key missing:</strong> backup." in listing


def test_disable_and_enable_are_audited_and_reach_the_planner(admin):
    channel = _channel("backup")
    listing = admin.get("/admin/channels").get_data(as_text=True)
    assert 'hx-confirm="Disable backup? Every route skips it' in listing
    response = _post(admin, f"/admin/channels/{channel.id}/disable", {}, htmx=True)
    row = response.get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="channel-{channel.id}"') and "health-disabled" in row and ">Enable<" in row
    assert route_table().routes["gpt-4o-mini"][1][1].enabled is False
    _post(admin, f"/admin/channels/{channel.id}/enable", {}, htmx=True)
    assert [(e.action, e.after) for e in _events()] == [("channel_disabled", {"enabled": False}),
                                                       ("channel_enabled", {"enabled": True})]
    assert _channel("backup").enabled


@pytest.mark.parametrize("changes, field, words", [
    ({"base_url": "http://169.254.169.254/latest"}, "base_url", "cloud metadata address"),
    ({"base_url": "http://metadata.google.internal/v1"}, "base_url", "cloud metadata service"),
    ({"base_url": "http://[fe80::1]/v1"}, "base_url", "link-local"),
    ({"base_url": "ftp://relay.example.com"}, "base_url", "http:// or https://"),
    ({"timeout_s": "601"}, "timeout_s", "at most 600"),
    ({"price_multiplier": "0"}, "price_multiplier", "above 0"),
    ({"name": "Not A Slug"}, "name", "must be a slug"),
    ({"name": "primary"}, "name", "already named 'primary'"),
    ({"models-0-public": "no-such-model"}, "models", "not in the catalog: no-such-model"),
    ({"models-0-upstream": ""}, "models", "Give both ids on a row"),
    ({"models-1-public": "gpt-4o-mini", "models-1-upstream": "x"}, "models", "gpt-4o-mini is mapped twice"),
])
def test_a_bad_field_is_refused_beside_it_with_the_importers_words_and_nothing_is_saved(admin, changes, field, words):
    response = _post(admin, "/admin/channels/new", _form(**changes), htmx=True)
    assert response.status_code == 422
    html = unescape(response.get_data(as_text=True))
    assert words.casefold() in html.casefold()
    if field != "models":
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="{field}"', html)
    assert _channel("relay-z") is None and _events() == []


def test_add_and_remove_row_buttons_edit_the_map_without_saving(admin):
    response = _post(admin, "/admin/channels/new", _form(action="add_row"), htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'name="models-1-public"' in html and 'value="openai/gpt-4o-mini"' in html
    response = _post(admin, "/admin/channels/new", _form(action="remove_row-0"), htmx=True)
    html = response.get_data(as_text=True)
    assert 'value="openai/gpt-4o-mini"' not in html and 'name="models-' in html
    assert _channel("relay-z") is None


def test_the_test_button_records_health_and_charges_nobody(admin, gateway):
    channel = _channel("primary")
    balances = gateway.balances()
    gateway.sim.set_fault("primary", status=503)
    response = _post(admin, f"/admin/channels/{channel.id}/test", {"model": "gpt-4o-mini"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="channel-test-{channel.id}"' in html
    assert "Failed" in html and "503" in html and "upstream server error" in html.lower() and "upstream_5xx" in html
    db.session.rollback()
    health = db.session.get(ChannelHealth, channel.id)
    assert (health.consecutive_failures, health.last_error_class) == (1, "upstream_5xx")

    gateway.sim.set_fault("primary")  # healthy again: the next test closes the run of failures
    html = _post(admin, f"/admin/channels/{channel.id}/test", {}, htmx=True).get_data(as_text=True)
    assert "OK" in html and "served <code>gpt-4o-mini-2024-07-18</code>" in html and " ms" in html
    db.session.rollback()
    assert db.session.get(ChannelHealth, channel.id).consecutive_failures == 0

    assert len(gateway.sim.log("primary")) == 2  # one request per press, nothing retried
    tests = _events("channel_tested")
    assert [(e.after["ok"], e.after["http_status"], e.after["error_class"]) for e in tests] == [
        (False, 503, "upstream_5xx"), (True, 200, None)]
    assert db.session.scalars(db.select(Receipt)).all() == []
    assert db.session.scalars(db.select(Hold)).all() == []
    assert {e.memo for e in db.session.scalars(db.select(LedgerEntry))} == {"test money"}
    assert gateway.balances() == balances
    assert_ledger_green()


def test_the_test_button_sends_an_embedding_probe_for_an_embedding_model(admin, gateway):
    channel = _channel("backup")
    html = _post(admin, f"/admin/channels/{channel.id}/test", {"model": "text-embedding-3-small"},
                 htmx=True).get_data(as_text=True)
    assert "OK" in html and "text-embedding-3-small" in html


def test_a_hostile_upstream_echoing_the_key_as_its_model_leaks_it_nowhere(admin, gateway):
    channel = _channel("primary")
    gateway.sim.set_fault("primary", echo_key="exact")  # the served model carries the key it received
    html = _post(admin, f"/admin/channels/{channel.id}/test", {"model": "gpt-4o-mini"}, htmx=True).get_data(as_text=True)
    assert "OK" in html and "[redacted]" in html
    [tested] = _events("channel_tested")
    assert "sk-primary-secret-1111" not in html + repr(tested.after)
    assert tested.after["mismatch"] is True  # a model name with a key in it is not the mapped one


def test_a_keyless_channel_is_not_tested_and_nothing_is_sent(admin, gateway):
    channel = _channel("backup")
    _post(admin, f"/admin/channels/{channel.id}/key/clear", {}, htmx=True)
    gateway.sim.reset()
    response = _post(admin, f"/admin/channels/{channel.id}/test", {}, htmx=True)
    assert response.status_code == 422 and "has no key, so nothing was sent" in response.get_data(as_text=True)
    assert gateway.sim.log("backup") == []
    assert _events("channel_tested") == []


def test_an_unknown_channel_is_404(admin):
    assert admin.get("/admin/channels/999").status_code == 404
    assert _post(admin, "/admin/channels/999/disable", {}).status_code == 404
