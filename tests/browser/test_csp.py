"""The htmx pages work under the Content-Security-Policy in real Chromium, without a single violation."""
from __future__ import annotations

from playwright.sync_api import expect

# Chromium reports a refused inline script or style on the console; this also records the DOM's own event.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
    (event) => window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI));
"""


def csp_complaints(messages: list[str]) -> list[str]:
    return [text for text in messages if "Content Security Policy" in text or "Content-Security-Policy" in text]


def test_sign_in_dashboard_keys_and_revoke_work_under_the_csp(page, make_user):
    make_user(credit_usd="5")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    page.add_init_script(RECORD_VIOLATIONS)

    page.goto("/login")
    page.fill("input[name=email]", "user@example.com")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your wallets")
    expect(page.locator("#wallet-credit")).to_contain_text("$5.00")

    page.click("text=API keys")
    page.fill("input[name=name]", "laptop")
    page.click("text=Create key")  # an htmx POST carrying the token from hx-headers
    expect(page.locator("#new-key-secret")).to_contain_text("wb-")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#api-keys button:has-text('Revoke')")  # htmx again: hx-confirm, then the swap and the OOB flash
    expect(page.locator("#api-keys tbody")).to_contain_text("revoked")
    expect(page.locator("#flashes")).to_contain_text("Key revoked")
    assert page.evaluate("window.__cspViolations") == []

    page.click("text=Sign out")  # a POST form with its CSRF token
    expect(page.locator("h1")).to_have_text("Sign in")
    expect(page.locator("#flashes")).to_contain_text("Signed out.")
    assert page.evaluate("window.__cspViolations") == [] and csp_complaints(console) == [], console
    assert [text for text in console if "page error" in text] == []

    # The listeners do hear a violation: an inline style injected now is refused and reported.
    inject_style = "() => document.head.append(Object.assign(document.createElement('style'), {textContent: 'body {}'}))"
    with page.expect_console_message(lambda message: bool(csp_complaints([message.text]))):
        page.evaluate(inject_style)
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__cspViolations")[0].startswith("style-src")
