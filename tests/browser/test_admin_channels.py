"""The admin channels pages in real Chromium: a channel made with a write-only key, tested, flagged when keyless."""
from __future__ import annotations

from playwright.sync_api import expect

from app.extensions import db
from app.gateway.models import Receipt
from app.routing.keys import resolve_key
from app.routing.models import Channel
from tests.browser.test_admin_routes import sign_in_admin
from tests.conftest import assert_ledger_green

SECRET = "sk-typed-in-the-browser-5150"


def test_a_channel_is_created_with_a_key_that_never_comes_back(page, gateway, make_user):
    sign_in_admin(page, make_user)
    page.goto("/admin/channels")
    page.click("a:has-text('New channel')")
    page.fill("input[name=name]", "relay-b")
    page.fill("input[name=label]", "Relay B")
    page.select_option("select[name=provider]", "openai-compatible")
    page.check("input[name=lane][value=routed]")
    page.fill("input[name=base_url]", "http://169.254.169.254/latest")
    page.fill("input[name=price_multiplier]", "1.2")
    page.fill("input[name=api_key]", SECRET)
    page.fill("input[name='models-0-public']", "gpt-4o-mini")
    page.fill("input[name='models-0-upstream']", "gpt-4o-mini")
    page.get_by_role("button", name="Add a row").click()
    page.fill("input[name='models-1-public']", "text-embedding-3-small")
    page.fill("input[name='models-1-upstream']", "text-embedding-3-small")
    page.get_by_role("button", name="Create channel").click()

    # Refused beside the field, and the typed key is not sent back into the form.
    expect(page.locator("#channel-form")).to_contain_text("Must not point at a cloud metadata address")
    assert SECRET not in page.content()
    page.fill("input[name=base_url]", f"{gateway.sim.root}/backup/v1")
    page.fill("input[name=api_key]", SECRET)
    page.get_by_role("button", name="Create channel").click()
    page.wait_for_url("**/admin/channels")
    expect(page.locator("#flashes")).to_contain_text("Channel relay-b created.")
    db.session.rollback()
    channel = db.session.scalar(db.select(Channel).where(Channel.name == "relay-b"))
    assert resolve_key(channel) == SECRET and channel.model_map == {
        "gpt-4o-mini": "gpt-4o-mini", "text-embedding-3-small": "text-embedding-3-small"}
    row = page.locator(f"#channel-{channel.id}")
    expect(row).to_contain_text("set, ends …5150")
    assert SECRET not in page.content()

    # The test button: an attempt shown in place, recorded, and charged to nobody.
    row.get_by_role("button", name="Test").click()
    expect(row.locator(".channel-test")).to_contain_text("OK 200")
    expect(row.locator(".channel-test")).to_contain_text("charged to nobody")
    db.session.rollback()
    assert db.session.scalars(db.select(Receipt)).all() == []
    assert_ledger_green()

    row.get_by_role("link", name="Edit").click()
    expect(page.locator("input[name=api_key]")).to_have_value("")
    assert SECRET not in page.content()
    page.select_option("#probe-model", "text-embedding-3-small")
    page.locator("#channel-probe").get_by_role("button", name="Test").click()
    expect(page.locator(f"#channel-test-{channel.id}")).to_contain_text("text-embedding-3-small")


def test_a_channel_whose_key_is_missing_is_flagged_on_the_channels_and_routes_pages(page, gateway, make_user):
    sign_in_admin(page, make_user)
    page.goto("/admin/channels/2")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Clear key").click()
    expect(page.locator("#channel-key")).to_contain_text("missing")
    expect(page.locator("#flashes")).to_contain_text("The key of backup was cleared")

    page.goto("/admin/channels")
    expect(page.locator("#keyless-channels")).to_contain_text("backup")
    expect(page.locator("#channel-2 .key-flag")).to_contain_text("missing")
    expect(page.locator("#channel-2 .health")).to_have_text("key missing")

    page.goto("/admin/routes")
    step = page.locator("#route-gpt-4o-mini li[data-channel=backup]")
    expect(step.locator(".health")).to_have_text("key missing")
    expect(step.locator(".step-warning")).to_contain_text("key missing: skipped")


def test_disabling_asks_first_and_the_row_updates_in_place(page, gateway, make_user):
    sign_in_admin(page, make_user)
    page.goto("/admin/channels")
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.locator("#channel-2").get_by_role("button", name="Disable").click()
    expect(page.locator("#channel-2 .health")).to_have_text("disabled")
    assert "Disable backup?" in dialogs[0] and "gpt-4o-mini" in dialogs[0]
    page.locator("#channel-2").get_by_role("button", name="Enable").click()
    expect(page.locator("#channel-2 .health")).to_have_text("healthy")


def test_the_channel_pages_fit_a_phone(page, gateway, make_user):
    sign_in_admin(page, make_user)
    page.set_viewport_size({"width": 390, "height": 844})
    for url in ("/admin/channels", "/admin/channels/1", "/admin/channels/new"):
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, url
