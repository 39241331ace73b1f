"""A new user's whole first hour, in real Chromium: sign up, redeem a code, make a routed-only key,
call the API with the openai SDK, and find the receipt with its route."""
from __future__ import annotations

import openai
from playwright.sync_api import expect

from app.accounts.models import User
from app.billing.codes import mint_codes
from app.billing.wallets import wallets_of
from app.extensions import db
from app.gateway.models import Receipt
from tests.conftest import assert_ledger_green


def test_signup_redeem_routed_only_key_call_and_receipt(page, app, gateway, live_server):
    code = mint_codes("routed", 2_500_000)[0]

    page.goto("/signup")
    page.fill("input[name=email]", "journey@example.com")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/")

    page.goto("/wallets/routed")
    page.fill("input[name=code]", code)
    page.click("form:has(input[name=code]) button[type=submit]")
    expect(page.locator("#flashes")).to_contain_text("$2.50")
    expect(page.locator("main")).to_contain_text("$2.50")

    page.goto("/keys")
    page.fill("input[name=name]", "routed only")
    page.uncheck("input[name=lanes][value=official]")
    page.check("input[name=lanes][value=routed]")
    page.click("form:has(input[name=name]) button[type=submit]")
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("wb-")

    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=secret, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], max_tokens=20)
    assert raw.headers["X-Waybill-Route"] == "backup" and raw.headers["X-Waybill-Settlement"] == "routed"
    receipt_id = raw.headers["X-Waybill-Receipt"]

    page.goto("/receipts")
    row = page.locator(f"a[href='/receipts/{receipt_id}']").first
    expect(row).to_be_visible()
    row.click()
    page.wait_for_url(f"**/receipts/{receipt_id}")
    main = page.locator("main")
    expect(main).to_contain_text("Backup relay")
    expect(main).to_contain_text("routed")
    # The official primary was skipped for the key's lanes, and the timeline says so.
    expect(main).to_contain_text("Primary (official)")
    expect(main.locator(".badge.fallback")).to_have_count(1)

    # The routed wallet paid exactly the receipt's charge; the Credit wallet was never touched.
    db.session.rollback()
    user = db.session.scalar(db.select(User).where(User.email == "journey@example.com"))
    charge = db.session.get(Receipt, receipt_id).charge
    wallets = wallets_of(user.id)
    assert charge > 0
    assert (wallets["routed"].balance, wallets["credit"].balance) == (2_500_000 - charge, 0)
    assert_ledger_green()
