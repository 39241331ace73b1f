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
    expect(page.locator("#ledger-entries .empty")).to_be_visible()

    page.click("text=API keys")
    expect(page.locator("#api-keys .empty")).to_be_visible()
    page.fill("input[name=name]", "laptop")
    page.click("text=Create key")  # an htmx POST: the CSRF token travels in X-CSRFToken
    secret = page.locator("#new-key-secret")
    expect(secret).to_contain_text("wb-")
    assert page.url.endswith("/keys")
    db.session.rollback()
    key = db.session.scalar(db.select(ApiKey).where(ApiKey.name == "laptop"))
    assert secret.inner_text().strip()[:10] == key.prefix
    page.screenshot(path=str(tmp_path / "keys.png"))

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#api-keys button:has-text('Revoke')")
    expect(page.locator("#api-keys tbody")).to_contain_text("revoked")
    expect(page.locator("#new-key-secret")).to_have_count(0)
    db.session.rollback()
    assert db.session.get(ApiKey, key.id).revoked

    page.click("text=Sign out")
    expect(page.locator("h1")).to_have_text("Sign in")
