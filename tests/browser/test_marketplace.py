"""The marketplace and a model's route preview in real Chromium: active search, lanes, prices, live health."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from app.extensions import db
from app.providers.base import ErrorClass
from app.routing.health import record_failure
from app.routing.models import Channel

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => window.__cspViolations.push(event.violatedDirective));
"""


def sign_in(page, email: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_the_marketplace_shows_a_models_primary_and_backup_with_lanes_and_prices(page, providers, tmp_path):
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(page, "api@example.com")
    page.goto("/models")
    results = page.locator("#model-results tbody tr")
    expect(results).to_have_count(5)
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    page.locator("input[name=q]").press_sequentially("gpt-4o")  # active search: no submit, no reload
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("GPT-4o mini")
    expect(results.first).to_contain_text("$0.15 / $0.60")
    expect(results.first).to_contain_text("$0.225 / $0.90")
    assert page.evaluate("window.__sameDocument") is True
    expect(page).to_have_url(re.compile(r"/models\?q=gpt-4o"))  # hx-push-url: the search is a link

    page.locator("input[name=q]").fill("")
    page.select_option("#model-mode", "embedding")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("text-embedding-3-small")
    page.select_option("#model-mode", "")
    page.locator("input[name=q]").press_sequentially("llama")
    expect(page.locator("#model-results .empty")).to_contain_text("No model matches “llama”")
    assert page.evaluate("window.__sameDocument") is True

    page.goto("/models?q=gpt")
    page.click("text=GPT-4o mini")
    expect(page.locator("h1")).to_have_text("GPT-4o mini")
    primary, backup = page.locator("#step-1"), page.locator("#step-2")
    expect(primary).to_contain_text("Primary (official)")
    expect(primary.locator(".badge.lane-official")).to_have_text("official")
    expect(primary).to_contain_text("Credit")
    expect(primary).to_contain_text("$0.15")
    expect(primary).to_contain_text("$0.60")
    expect(backup).to_contain_text("Backup relay")
    expect(backup.locator(".badge.lane-routed")).to_have_text("routed")
    expect(backup).to_contain_text("routed balance")
    expect(backup).to_contain_text("$0.225")
    expect(backup).to_contain_text("$0.90")
    expect(backup).to_contain_text("same model as the primary")
    expect(page.locator("#fallback-sentence")).to_have_text(re.compile(
        r"If the primary fails, this request is charged from your routed balance at \$0\.225 input / \$0\.90 output "
        r"per 1M tokens,\s+through Backup relay\s+routed\."))
    page.screenshot(path=str(tmp_path / "model.png"), full_page=True)

    # The route stays live: the primary's circuit trips, and the open page shows it cooling without a reload.
    primary_id = db.session.scalar(db.select(Channel.id).where(Channel.name == "primary"))
    for _ in range(3):
        record_failure(primary_id, ErrorClass.UPSTREAM_5XX)
    expect(primary.locator(".badge.health-cooling")).to_be_visible()
    expect(page.locator(".primary-note")).to_contain_text("The primary is cooling for")
    assert page.evaluate("window.__cspViolations") == []


def test_the_marketplace_pages_fit_a_phone(page, providers):
    sign_in(page, "api@example.com")
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/models", "/models/gpt-4o-mini", "/models/claude-sonnet-4-6"):
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
