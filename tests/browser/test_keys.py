"""The API keys page in real Chromium: a routed-only, scoped, limited key made, shown once, listed, and revoked."""
from __future__ import annotations

from datetime import timedelta

import openai
from playwright.sync_api import expect

from app.accounts.models import ApiKey
from app.database import utcnow
from app.extensions import db
from tests.browser import sign_in


def _sign_in(page, email="api@example.com"):
    sign_in(page, email)


def test_a_routed_only_scoped_capped_key_is_made_shown_once_listed_and_revoked(page, gateway, live_server):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _sign_in(page)
    page.goto("/keys")
    page.click("summary:has-text('Create a key')")  # the user already has a key, so the form starts folded
    page.fill("input[name=name]", "build server")
    page.check("input[name=models][value=gpt-4o-mini]")
    page.uncheck("input[name=lanes][value=official]")  # one lane only: the browser must still let it submit
    expires = (utcnow().date() + timedelta(days=30)).isoformat()
    page.fill("input[name=expires]", expires)
    page.fill("input[name=spend_cap]", "2.50")
    page.fill("input[name=rpm]", "30")
    page.click("button:has-text('Create key')")

    secret = page.locator("#new-key-secret")
    expect(secret).to_contain_text("wb-")
    assert page.url.endswith("/keys")  # htmx swapped the panel in place
    expect(page.locator("#new-key")).to_contain_text(f"{live_server}/v1")
    page.click("button[data-copy='#new-key-secret']")
    expect(page.locator("button[data-copy='#new-key-secret']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret.inner_text().strip()

    db.session.rollback()
    key = db.session.scalar(db.select(ApiKey).where(ApiKey.name == "build server"))
    assert (key.lanes, key.models, key.rpm_limit, key.spend_cap) == (["routed"], ["gpt-4o-mini"], 30, 2_500_000)
    row = page.locator(f"#key-{key.id}")
    expect(row).to_contain_text("gpt-4o-mini")
    expect(row.locator(".lane-routed")).to_be_visible()
    expect(row.locator(".lane-official")).to_have_count(0)
    expect(row).to_contain_text(f"expires {expires}")
    expect(row).to_contain_text("30 req/min")
    expect(row).to_contain_text("$0.00 / $2.50")
    expect(row.locator("progress")).to_be_visible()
    expect(row).to_contain_text("never")
    expect(row).to_contain_text("active")

    # The key works on its lane only: the official primary is skipped, the routed backup serves.
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=secret.inner_text().strip(), max_retries=0)
    served = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20)
    assert served.headers["X-Waybill-Settlement"] == "routed"

    # Shown once: reloading lists the key but no longer shows its secret.
    page.reload()
    expect(page.locator("#new-key-secret")).to_have_count(0)
    expect(row).to_contain_text("just now")

    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    row.locator("button:has-text('Revoke')").click()
    expect(page.locator("#flashes")).to_contain_text("Key revoked")
    expect(row).to_contain_text("revoked")
    expect(row.locator("button:has-text('Revoke')")).to_have_count(0)
    assert "build server" in dialogs[0] and "401" in dialogs[0]
    db.session.rollback()
    assert db.session.get(ApiKey, key.id).revoked


def test_a_bad_value_shows_its_error_on_the_field_and_creates_nothing(page, gateway):
    _sign_in(page)
    page.goto("/keys")
    page.click("summary:has-text('Create a key')")
    page.fill("input[name=name]", "too precise")
    page.fill("input[name=spend_cap]", "0.0000001")
    page.click("button:has-text('Create key')")
    expect(page.locator("#spend_cap")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#api-keys")).to_contain_text("more precision than one micro-USD")
    expect(page.locator("#new-key-secret")).to_have_count(0)
    db.session.rollback()
    assert db.session.scalar(db.select(ApiKey).where(ApiKey.name == "too precise")) is None


def test_without_javascript_the_form_still_makes_a_single_lane_key(browser, live_server, gateway):
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    try:
        page = context.new_page()
        _sign_in(page)
        page.goto("/keys")
        page.click("summary:has-text('Create a key')")
        page.fill("input[name=name]", "no script")
        page.uncheck("input[name=lanes][value=routed]")
        page.click("button:has-text('Create key')")
        expect(page.locator("#new-key-secret")).to_contain_text("wb-")
        db.session.rollback()
        key = db.session.scalar(db.select(ApiKey).where(ApiKey.name == "no script"))
        assert key.lanes == ["official"] and key.models is None
    finally:
        context.close()
