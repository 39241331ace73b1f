"""The review queue in real Chromium: a dead request's hold swept, refunded, and seen in the user's ledger."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from app.billing import holds
from app.billing.wallets import wallet_of
from app.extensions import db
from app.gateway.models import Receipt
from tests.browser.test_csp import RECORD_VIOLATIONS
from tests.conftest import assert_ledger_green

PHONE = {"width": 390, "height": 844}


def sign_in(page, email: str, password: str = "password123") -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your wallets")


def sign_out(page) -> None:
    page.click("form[action='/logout'] button")
    expect(page.locator("header a", has_text="Sign in")).to_be_visible()


def dead_request(user_id: int, receipt_id: str) -> int:
    """A request whose worker died: an open hold already past its deadline, and an unfinished receipt."""
    hold = holds.reserve(wallet_of(user_id, "credit").id, 40_000, memo=f"{receipt_id} gpt-4o-mini", ttl_s=0)
    db.session.add(Receipt(id=receipt_id, user_id=user_id, endpoint="chat", requested_model="gpt-4o-mini",
                           hold_id=hold.id, flags=[]))
    db.session.commit()
    return hold.id


def test_a_refund_from_the_review_queue_shows_in_the_users_ledger_and_ledger_check_stays_green(
        page, make_user, run_cli):
    user = make_user("dead@example.com", credit_usd="1")
    make_user("admin@example.com", admin=True)
    hold_id = dead_request(user.id, "rcpt_dead")
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm asks before every action

    sign_in(page, "admin@example.com")
    page.goto("/admin/review")
    expect(page.locator(f"#hold-{hold_id}")).to_contain_text("dead@example.com")
    page.locator(f"#hold-{hold_id} button", has_text="Sweep").click()
    expect(page.locator("#flashes")).to_contain_text(f"Hold {hold_id} swept: settled, charged $0.04")
    row = page.locator("#review-rcpt_dead")
    expect(row).to_contain_text("review")
    page.screenshot(path="/tmp/admin-review-1280.png", full_page=True)

    row.locator("summary", has_text="Refund…").click()
    row.locator("input[name=note]").fill("worker crash")
    row.locator("button", has_text="Refund").click()
    expect(page.locator("#flashes")).to_contain_text("Refunded $0.04 of receipt rcpt_dead")
    expect(page.locator("#review")).to_contain_text("Nothing to review")
    assert page.evaluate("window.__cspViolations") == []

    sign_out(page)
    sign_in(page, "dead@example.com")
    page.goto("/wallets/credit")
    refund = page.locator("#ledger tbody tr", has_text="refund of rcpt_dead")
    expect(refund).to_contain_text("refund of rcpt_dead by admin@example.com: worker crash")
    expect(refund).to_contain_text("$0.04")
    expect(refund.locator("td").nth(3)).to_have_text("$1.00")  # the balance after: whole again

    assert "ledger check passed" in run_cli("ledger", "check").stdout
    assert_ledger_green()


def test_admin_users_review_and_receipt_pages_fit_a_phone(page, make_user):
    user = make_user("someone-with-a-rather-long-address@example-company.org", credit_usd="3")
    make_user("admin@example.com", admin=True)
    dead_request(user.id, "rcpt_0123456789abcdef01234567")
    from app.gateway.sweep import sweep_stale_holds
    sweep_stale_holds()
    dead_request(user.id, "rcpt_still_open_0123456789abc")
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(page, "admin@example.com")

    pages = {"users": "/admin/users", "user": f"/admin/users/{user.id}", "review": "/admin/review",
             "receipt": "/admin/receipts/rcpt_0123456789abcdef01234567"}
    for name, path in pages.items():
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(path)
        page.screenshot(path=f"/tmp/admin-{name}-1280.png", full_page=True)
        page.set_viewport_size(PHONE)
        page.goto(path)
        page.screenshot(path=f"/tmp/admin-{name}-390.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    assert page.evaluate("window.__cspViolations") == []

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/admin/users")
    page.fill("#user-query", "long-add")
    expect(page.locator("#users tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/admin/users\?q=long-add$"))
    page.fill("#user-query", "nobody-here")
    expect(page.locator("#users .empty")).to_contain_text("No user’s email contains “nobody-here”.")
