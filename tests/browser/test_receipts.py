"""Receipts in real Chromium: a fallback's timeline, a new receipt arriving by itself, filters, and scoping."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import sign_in

from tests.browser.test_csp import RECORD_VIOLATIONS


def _sign_in(page, email: str = "api@example.com") -> None:
    """Sign in through the real form, landing on the receipts list."""
    sign_in(page, email, "/receipts", heading="Receipts")


def _chat(client) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Show me my route"}])
    return raw.headers["X-Waybill-Receipt"]


def test_a_fallback_receipts_timeline_shows_the_failed_primary_and_the_backup_that_served(page, openai_client, gateway):
    page.add_init_script(RECORD_VIOLATIONS)
    gateway.sim.set_fault("primary", status=503)
    receipt_id = _chat(openai_client)
    _sign_in(page)
    row = page.locator(f"#receipt-{receipt_id}")
    expect(row).to_contain_text("Backup relay")
    expect(row.locator(".badge.fallback")).to_be_visible()
    expect(row.locator(".badge.lane-routed")).to_be_visible()
    row.locator("a").first.click()

    expect(page).to_have_url(re.compile(f"/receipts/{receipt_id}$"))
    expect(page.locator("#receipt-story")).to_have_text(
        "Served by the backup Backup relay after the primary returned 503.")
    steps = page.locator("#attempts > li")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("Primary (official)")
    expect(steps.nth(0)).to_contain_text("failed")
    expect(steps.nth(0)).to_contain_text("503")
    expect(steps.nth(0)).to_contain_text("Upstream server error")
    expect(steps.nth(1)).to_contain_text("Backup relay")
    expect(steps.nth(1)).to_contain_text("served")
    expect(steps.nth(1).locator(".badge.lane-routed")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text(gateway.sim.root)

    page.click("#ledger-link")
    expect(page).to_have_url(re.compile(r"/wallets/routed\?entry=\d+$"))
    assert page.evaluate("window.__cspViolations") == []


def test_a_new_receipt_appears_in_the_list_without_a_reload(page, openai_client, gateway):
    _sign_in(page)
    expect(page.locator("#receipts .empty")).to_contain_text("No receipts yet")
    page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded

    receipt_id = _chat(openai_client)
    expect(page.locator(f"#receipt-{receipt_id}")).to_be_visible()
    expect(page.locator(f"#receipt-{receipt_id}")).to_contain_text("succeeded")
    second = _chat(openai_client)
    expect(page.locator("#receipts tbody tr").first).to_have_attribute("id", f"receipt-{second}")
    assert page.evaluate("window.__sameDocument") is True


def test_the_filter_form_narrows_the_list_in_place_and_keeps_the_address(page, openai_client, gateway):
    served = _chat(openai_client)
    gateway.sim.set_fault("primary", status=503)
    fell_back = _chat(openai_client)
    _sign_in(page)
    expect(page.locator("#receipts tbody tr")).to_have_count(2)
    page.evaluate("window.__sameDocument = true")

    page.select_option("select[name=fallback]", "yes")
    expect(page.locator("#receipts tbody tr")).to_have_count(1)
    expect(page.locator(f"#receipt-{fell_back}")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/receipts\?.*fallback=yes"))
    page.select_option("select[name=lane]", "official")
    expect(page.locator("#receipts .empty")).to_contain_text("Nothing matches these filters")
    assert page.evaluate("window.__sameDocument") is True

    page.goto("/receipts?fallback=no")  # the kept address reloads to the same list
    expect(page.locator(f"#receipt-{served}")).to_be_visible()
    expect(page.locator("#receipts tbody tr")).to_have_count(1)
    expect(page.locator("select[name=fallback]")).to_have_value("no")


def test_user_b_gets_the_404_page_on_user_as_receipt(page, openai_client, gateway, make_user):
    receipt_id = _chat(openai_client)
    make_user("b@example.com")
    _sign_in(page, "b@example.com")
    response = page.goto(f"/receipts/{receipt_id}")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    page.goto("/receipts")
    expect(page.locator("#receipts .empty")).to_contain_text("No receipts yet")


def test_older_pages_load_in_place_keep_the_filters_and_do_not_poll(page, openai_client, gateway):
    from app.gateway.receipts import PER_PAGE
    oldest = _chat(openai_client)
    for _ in range(PER_PAGE):
        _chat(openai_client)
    _sign_in(page)
    page.goto("/receipts?lane=official")
    expect(page.locator("#receipts tbody tr")).to_have_count(PER_PAGE)
    expect(page.locator("#receipts")).to_have_attribute("data-poll", "")
    page.evaluate("window.__sameDocument = true")

    page.click("#receipts a[rel=next]")
    expect(page).to_have_url(re.compile(r"/receipts\?page=2&lane=official$"))
    expect(page.locator("#receipts tbody tr")).to_have_count(1)
    expect(page.locator(f"#receipt-{oldest}")).to_be_visible()
    expect(page.locator("#receipts")).not_to_have_attribute("data-poll", "")
    assert page.evaluate("window.__sameDocument") is True
