"""The catalog, audit and codes pages in real Chromium: a sync's diff is shown before it is applied."""
from __future__ import annotations

import json

from playwright.sync_api import expect

from app.audit_trail.service import record_change
from app.billing.codes import mint_codes, redeem_code
from app.catalog.models import Model, PriceChange
from app.catalog.sync import SHIPPED_SNAPSHOT, sync_catalog
from app.extensions import db
from tests.browser.test_admin_review import PHONE, sign_in
from tests.browser.test_csp import RECORD_VIOLATIONS


def test_the_catalog_diff_is_shown_before_it_is_applied(page, make_user, tmp_path):
    sync_catalog()
    make_user("admin@example.com", admin=True)
    data = json.loads(SHIPPED_SNAPSHOT.read_text())
    data["gpt-4o-mini"]["input_cost_per_token"] = 1.2e-07
    upload = tmp_path / "prices.json"
    upload.write_text(json.dumps(data))
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm asks before applying

    sign_in(page, "admin@example.com")
    page.goto("/admin/catalog")
    page.check("input[name=source][value=upload]")
    page.set_input_files("input[name=file]", str(upload))
    page.get_by_role("button", name="Preview the changes").click()
    diff = page.locator("#catalog-diff")
    expect(diff).to_contain_text("Nothing has been applied yet")
    row = diff.locator("table.diff-changed tr", has_text="gpt-4o-mini")
    expect(row).to_contain_text("$0.15")
    expect(row).to_contain_text("$0.12")
    page.screenshot(path="/tmp/admin-catalog-diff-1280.png", full_page=True)

    db.session.rollback()
    assert db.session.get(Model, "gpt-4o-mini").input_per_mtok == 150_000  # the preview wrote nothing
    assert db.session.scalar(db.select(db.func.count()).select_from(PriceChange)) == 0

    page.get_by_role("button", name="Apply this diff").click()
    expect(page.locator("#flashes")).to_contain_text("0 added, 1 changed")
    expect(page.locator("#catalog-diff")).to_have_count(0)
    mini = page.locator("#catalog-models tr", has_text="gpt-4o-mini").first
    expect(mini).to_contain_text("$0.12")  # the list reloaded itself
    db.session.rollback()
    assert db.session.get(Model, "gpt-4o-mini").input_per_mtok == 120_000

    page.locator("#catalog-models a", has_text="gpt-4o-mini").first.click()
    expect(page.locator(".price-history")).to_contain_text("upload prices.json")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("tr#model-gpt-4o-mini .badge")).to_have_text("published")
    page.goto("/admin/audit")
    expect(page.locator("#audit")).to_contain_text("model_published")
    expect(page.locator("#audit")).to_contain_text("catalog_synced")
    assert page.evaluate("window.__cspViolations") == []


def test_catalog_audit_and_codes_pages_fit_a_phone(page, make_user):
    sync_catalog()
    user = make_user("someone-with-a-rather-long-address@example-company.org")
    admin = make_user("admin@example.com", admin=True)
    code = mint_codes("credit", 1_000_000, 3, created_by=admin.id)[0]
    redeem_code(user.id, code)
    record_change(admin.id, "channel_updated", "channel a-channel-with-a-long-name-for-the-phone",
                  {"model_map": {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}, "timeout_s": 60},
                  {"model_map": {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}, "timeout_s": 30})
    db.session.commit()
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(page, "admin@example.com")
    for name, path in {"catalog": "/admin/catalog", "catalog-model": "/admin/catalog/models/gpt-4o-mini",
                       "audit": "/admin/audit", "codes": "/admin/codes"}.items():
        for width, size in (("1280", {"width": 1280, "height": 900}), ("390", PHONE)):
            page.set_viewport_size(size)
            page.goto(path)
            page.screenshot(path=f"/tmp/admin-{name}-{width}.png", full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= size["width"], (name, width)

    page.goto("/admin/codes")
    page.select_option("select[name=wallet]", "routed")
    page.fill("input[name=amount]", "5")
    page.fill("input[name=count]", "2")
    page.get_by_role("button", name="Mint codes").click()
    expect(page.locator("#minted-codes")).to_contain_text("WB-")
    expect(page.locator("#codes tbody tr")).to_have_count(5)  # the list reloaded with the new batch
    page.screenshot(path="/tmp/admin-codes-minted-390.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("link", name="Used", exact=True).click()
    expect(page.locator("#codes tbody tr")).to_have_count(1)
    expect(page.locator("#codes")).to_contain_text("someone-with-a-rather-long-address@example-company.org")
    assert page.evaluate("window.__cspViolations") == []
