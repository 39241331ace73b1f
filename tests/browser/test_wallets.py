"""Wallets in real Chromium: the spend chart, the CSV download, htmx filters, and redeeming a code."""
from __future__ import annotations

import csv
from datetime import timedelta

from playwright.sync_api import expect

from app.billing.codes import mint_codes
from app.billing.holds import reserve, settle
from app.billing.wallets import credit, wallet_of
from app.extensions import db
from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.conftest import assert_ledger_green
from tests.user.test_wallets import assert_csv_is_the_ledger

PHONE = {"width": 390, "height": 844}


def sign_in(page, email="user@example.com", password="password123"):
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your wallets")


def charge(wallet_id: int, micros: int, memo: str = "a request") -> None:
    settle(reserve(wallet_id, micros).id, micros, memo=memo)


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_spend_chart_renders(page, make_user, clock):
    user = make_user(credit_usd="20", routed_usd="20")
    wallets = {kind: wallet_of(user.id, kind).id for kind in ("credit", "routed")}
    today = clock.now()
    for days_ago, micros in ((0, 1_200_000), (1, 350_000), (6, 2_000_000), (13, 80_000)):
        clock.at = today - timedelta(days=days_ago)
        charge(wallets["credit"], micros)
    clock.at = today
    sign_in(page)

    chart = page.locator("#spend-credit svg.spend-chart")
    expect(chart).to_be_visible()
    expect(page.locator("#spend-credit figcaption")).to_have_text("official Credit: $3.63 in 30 days")
    bars = chart.locator("rect.bar")
    expect(bars).to_have_count(4)
    heights = [float(bar.get_attribute("height")) for bar in bars.all()]
    assert max(heights) == heights[1] and all(h > 0 for h in heights)  # oldest first: the $2 day is the tallest
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    assert chart.locator("g.day").count() == 30
    assert chart.locator("g.day title").last.text_content().endswith("$1.20")  # today's tooltip
    assert "Spend from your official Credit per day" in chart.locator("title").first.text_content()
    expect(page.locator("#spend-routed .empty")).to_have_text("No spend from your routed balance in the last 30 days.")
    page.screenshot(path="/tmp/wallets-dashboard-1280.png", full_page=True)
    page.set_viewport_size(PHONE)
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] <= PHONE["width"] and no_horizontal_overflow(page)
    page.screenshot(path="/tmp/wallets-dashboard-390.png", full_page=True)
    assert page.evaluate("window.__cspViolations") == []


def test_the_csv_matches_the_ledger(page, make_user, tmp_path):
    user = make_user(credit_usd="5")
    wallet = wallet_of(user.id, "credit").id
    for n in range(60):
        charge(wallet, 263 + n, memo=f"request {n}")
    credit(wallet, 1_000_000, memo="=cmd|' /C calc'!A0")
    sign_in(page)
    page.click("nav >> text=Credit")
    expect(page.locator("h1")).to_have_text("Official Credit")
    expect(page.locator("#ledger tbody tr")).to_have_count(50)
    expect(page.locator("#ledger .pager")).to_contain_text("Page 1 of 2 · 62 in all")

    with page.expect_download() as download:
        page.click("text=Download CSV")
    path = tmp_path / "ledger.csv"
    download.value.save_as(path)
    assert download.value.suggested_filename.startswith("waybill-credit-ledger-")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    db.session.rollback()
    assert_csv_is_the_ledger(rows, wallet)
    shown = page.locator("#ledger tbody tr").evaluate_all("rows => rows.map(r => r.id)")
    assert shown == [f"entry-{row['entry_id']}" for row in rows[:50]]  # the page and the file list the same entries

    # Filtering swaps the ledger in place (htmx) and the CSV link follows the filter.
    page.evaluate("window.__samePage = true")
    page.select_option("select[name=type]", "topup")
    page.click("#ledger button:has-text('Filter')")
    expect(page.locator("#ledger tbody tr")).to_have_count(2)
    assert page.evaluate("window.__samePage") is True and "type=topup" in page.url
    with page.expect_download() as download:
        page.click("text=Download CSV")
    download.value.save_as(path)
    with path.open(newline="") as handle:
        topups = list(csv.DictReader(handle))
    assert [row["kind"] for row in topups] == ["topup", "topup"] and topups[0]["memo"].startswith("'=cmd")
    page.set_viewport_size(PHONE)
    assert no_horizontal_overflow(page)
    page.screenshot(path="/tmp/wallets-ledger-390.png", full_page=True)


def test_redeeming_a_code_in_the_browser_updates_the_balance(page, make_user):
    make_user(routed_usd="0.50")
    [code] = mint_codes("routed", 7_250_000)
    sign_in(page)
    notice = page.locator("#wallet-routed .low-balance")
    expect(notice).to_be_visible()
    notice.locator("text=Redeem a code").click()
    expect(page.locator("h1")).to_have_text("Routed balance")
    page.evaluate("window.__samePage = true")
    page.fill("input[name=code]", code.lower())
    page.click("#redeem button[type=submit]")
    expect(page.locator("#flashes")).to_contain_text("Code redeemed: $7.25 added to your routed balance.")
    expect(page.locator("#wallet-routed .balance")).to_contain_text("$7.75")
    expect(page.locator("#wallet-routed .low-balance")).to_have_count(0)
    expect(page.locator("#ledger tr.highlight")).to_contain_text("redeem code WB-")
    expect(page.locator("input[name=code]")).to_have_value("")
    assert page.evaluate("window.__samePage") is True  # no reload: htmx swapped the parts

    page.fill("input[name=code]", code)
    page.click("#redeem button[type=submit]")
    expect(page.locator("#flashes")).to_contain_text("That code is not valid")
    expect(page.locator("#wallet-routed .balance")).to_contain_text("$7.75")
    page.screenshot(path="/tmp/wallets-redeem-1280.png", full_page=True)
    page.set_viewport_size(PHONE)
    assert no_horizontal_overflow(page)
    page.screenshot(path="/tmp/wallets-redeem-390.png", full_page=True)
    assert page.evaluate("window.__cspViolations") == []
    assert_ledger_green()
