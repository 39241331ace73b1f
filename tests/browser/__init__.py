"""Browser tests: real Chromium driven by Playwright against the app on a loopback port."""
from playwright.sync_api import expect


def sign_in(page, email: str = "api@example.com", next_path: str = "/", heading: str | None = None) -> None:
    """Sign in through the real form and land on next_path, waiting for its heading when one is given."""
    page.goto(f"/login?next={next_path}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    if heading is not None:
        expect(page.locator("h1")).to_have_text(heading)
    else:
        page.wait_for_url(f"**{next_path}")
