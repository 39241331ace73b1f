"""Every user page fits a 390 px phone: nothing scrolls sideways, the menu folds, tables scroll in their card."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

USER_PAGES = ["/", "/models", "/models/gpt-4o-mini", "/receipts", "/wallets/credit", "/wallets/routed", "/keys",
              "/assistant"]


@pytest.fixture
def signed_in(browser, live_server, gateway, openai_client):
    """A fallback receipt on the books, and a browser at a width, signed in as its user."""
    gateway.sim.set_fault("primary", status=503, times=1)
    served = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20)
    contexts = []

    def open_at(width: int):
        context = browser.new_context(base_url=live_server, viewport={"width": width, "height": 844})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=email]", "api@example.com")
        page.fill("input[name=password]", "password123")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server}/")
        return page, f"/receipts/{served.headers['X-Waybill-Receipt']}"
    yield open_at
    for context in contexts:
        context.close()


def test_no_user_page_overflows_a_390_px_screen(signed_in):
    page, receipt_path = signed_in(390)
    for path in [*USER_PAGES, receipt_path]:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide"


def test_the_menu_folds_on_a_phone_and_opens_on_a_tap(signed_in):
    page, _ = signed_in(390)
    links = page.locator("header nav ul.nav-links")
    expect(links).to_be_hidden()
    page.click("label.nav-toggle-label")
    expect(links).to_be_visible()
    page.click("header nav >> text=Receipts")
    page.wait_for_url("**/receipts")


def test_the_menu_is_open_on_a_desktop(signed_in):
    page, _ = signed_in(1280)
    expect(page.locator("header nav ul.nav-links")).to_be_visible()
    expect(page.locator("label.nav-toggle-label")).to_be_hidden()
