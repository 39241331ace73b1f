"""A person signs up, sees two wallets, creates an API key and revokes it, in real Chromium."""
from __future__ import annotations

from playwright.sync_api import expect

from app.accounts.models import ApiKey
from app.extensions import db


def test_signup_wallets_and_key_lifecycle(page, app, tmp_path):
    page.goto("/signup")
    page.fill("input[name=email]", "browser@example.com")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your wallets")
    expect(page.locator("#wallet-credit")).to_contain_text("$0.00")
    expect(page.locator("#wallet-routed")).to_contain_text("$0.00")
    expect(page.locator("#latest-receipts .empty")).to_be_visible()
    page.goto("/wallets/credit")
    expect(page.locator("#ledger .empty")).to_be_visible()

    page.click("text=API keys")
    expect(page.locator("#api-keys > .empty")).to_contain_text("No keys yet")
    expect(page.locator("details.new-key")).to_have_attribute("open", "")  # no key yet: the form is unfolded
    page.fill("input[name=name]", "laptop")
    page.uncheck("input[name=lanes][value=routed]")  # a single-lane key: Credit at official prices only
    page.click("button:has-text('Create key')")  # an htmx POST: the CSRF token travels in X-CSRFToken
    secret = page.locator("#new-key-secret")
    expect(secret).to_contain_text("wb-")
    expect(page.locator("button[data-copy='#new-key-secret']")).to_be_visible()
    assert page.url.endswith("/keys")
    db.session.rollback()
    key = db.session.scalar(db.select(ApiKey).where(ApiKey.name == "laptop"))
    assert secret.inner_text().strip()[:10] == key.prefix
    assert key.lanes == ["official"] and key.models is None
    row = page.locator(f"#key-{key.id}")
    expect(row).to_contain_text("all models")
    expect(row.locator(".lane-official")).to_be_visible()
    expect(row.locator(".lane-routed")).to_have_count(0)
    page.screenshot(path=str(tmp_path / "keys.png"))

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#api-keys button:has-text('Revoke')")
    expect(page.locator("#api-keys tbody")).to_contain_text("revoked")
    expect(page.locator("#new-key-secret")).to_have_count(0)
    db.session.rollback()
    assert db.session.get(ApiKey, key.id).revoked

    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in")
