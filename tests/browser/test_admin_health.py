"""The admin health board in real Chromium: it follows simulator faults live, without a reload."""
from __future__ import annotations

import openai
from playwright.sync_api import expect

from app.audit_trail.models import AuditEvent
from app.extensions import db
from app.routing.admin import clear_channel_key
from app.routing.models import Channel
from tests.browser.test_admin_routes import sign_in_admin


def _chat(client, model: str = "gpt-4o-mini") -> None:
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Still there?"}])
    except openai.APIStatusError:
        pass  # a failed request is what these tests are after


def _id(name: str) -> int:
    db.session.rollback()
    return db.session.scalar(db.select(Channel.id).where(Channel.name == name))


def test_simulator_faults_turn_a_channel_to_cooling_and_a_provider_wide_incident_on_the_open_board(
        page, providers, make_user, openai_client):
    sign_in_admin(page, make_user)
    page.goto("/admin/health")
    url = page.url
    page.evaluate("window.boardMarker = 'the same page'")  # a reload would drop it
    primary = page.locator(f"#health-channel-{_id('primary')}")
    expect(primary.locator(".health")).to_have_text("healthy")
    expect(page.locator("#incidents")).to_contain_text("No channel is failing.")

    # Three failures open the primary's circuit; the board polls its way to "cooling" with a countdown.
    providers.sim.set_fault("primary", status=500)
    for _ in range(3):
        _chat(openai_client)
    expect(primary.locator(".health")).to_have_text("cooling")
    expect(primary.locator(".countdown")).to_contain_text("s left")
    expect(page.locator(f"#single-issue-{_id('primary')}")).to_contain_text("single channel issue")
    expect(primary).to_contain_text("Upstream server error")

    # Every openai-compatible channel (backup, relay-c) failing is a provider-wide incident.
    providers.sim.set_fault("backup", status=500)
    providers.sim.set_fault("relay-c", status=500)
    _chat(openai_client)
    _chat(openai_client, "text-only-model")
    incident = page.locator("#incidents .incident")
    expect(incident).to_contain_text("provider-wide incident")
    expect(incident).to_contain_text("openai-compatible")
    expect(incident).to_contain_text("backup, relay-c")
    expect(page.locator(f"#health-channel-{_id('relay-c')} .incident-tag")).to_have_text("provider-wide incident")
    expect(page.locator(f"#single-issue-{_id('primary')}")).to_contain_text("single channel issue")

    assert page.url == url
    assert page.evaluate("window.boardMarker") == "the same page", "the board must update without a reload"

    # The reset button asks first, then answers the updated board; the change is audited.
    page.once("dialog", lambda dialog: dialog.accept())
    primary.get_by_role("button", name="Reset cooldown").click()
    expect(primary.locator(".health")).to_have_text("healthy")
    expect(page.locator("#flashes")).to_contain_text("The cooldown of primary was reset")
    db.session.rollback()
    assert db.session.scalar(db.select(AuditEvent.subject).where(AuditEvent.action == "cooldown_reset")) == \
        "channel primary"


def test_a_channel_whose_key_is_missing_is_flagged_on_the_health_page(page, gateway, make_user):
    clear_channel_key(None, _id("backup"))
    sign_in_admin(page, make_user)
    page.goto("/admin/health")
    backup = page.locator(f"#health-channel-{_id('backup')}")
    expect(backup.locator(".health")).to_have_text("key missing")
    expect(backup.get_by_role("link", name="Set a key")).to_be_visible()

    # Clear the primary's key too: the models it routes have no usable step left, named at the top.
    clear_channel_key(None, _id("primary"))
    expect(page.locator("#unusable-models")).to_contain_text("gpt-4o-mini")
    expect(page.locator("#unusable-models")).to_contain_text("primary: key missing; backup: key missing")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"/admin/health is {width} px wide"
