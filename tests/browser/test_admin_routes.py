"""The admin routes page in real Chromium: a step dragged, or moved by the keyboard buttons, and the gateway follows."""
from __future__ import annotations

from playwright.sync_api import expect

from app.audit_trail.models import AuditEvent
from app.extensions import db
from app.routing.models import Channel, RouteStep
from tests.conftest import assert_ledger_green, import_config_text, receipt_of


def sign_in_admin(page, make_user):
    make_user("admin@example.com", admin=True)
    page.goto("/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def _order() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(db.select(Channel.name).join(RouteStep).where(RouteStep.model_id == "gpt-4o-mini")
                                   .order_by(RouteStep.position)))


def _steps(card) -> list[str]:
    return card.locator("li.route-step").evaluate_all("items => items.map(item => item.dataset.channel)")


def test_an_admin_drags_the_backup_above_the_primary_and_the_next_request_is_served_by_it(
        page, gateway, make_user, openai_client):
    sign_in_admin(page, make_user)
    page.goto("/admin/routes")
    card = page.locator("#route-gpt-4o-mini")
    assert _steps(card) == ["primary", "backup"]

    handle = card.locator("li[data-channel=backup] .drag-handle")
    target = card.locator("li[data-channel=primary]")
    handle.hover()
    page.mouse.down()
    box = target.bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 5, steps=12)
    page.mouse.up()

    expect(card.locator(".route-notice")).to_have_text("Order saved: backup, primary.")
    assert _steps(card) == ["backup", "primary"]
    expect(card.locator("li[data-channel=backup] .step-position")).to_have_text("1")
    assert _order() == ["backup", "primary"]

    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "who serves now?"}], max_tokens=10)
    receipt = receipt_of(openai_client, raw.headers["X-Waybill-Receipt"])
    assert receipt["route"]["channel"] == "backup" and receipt["route"]["position"] == 1
    assert receipt["fallback_used"] is False and receipt["settlement"] == "routed"
    db.session.rollback()
    event = db.session.scalar(db.select(AuditEvent).where(AuditEvent.action == "route_reordered"))
    assert event.after == {"channels": ["backup", "primary"]}
    assert_ledger_green()

    # A second drag works on the card the server sent back.
    card.locator("li[data-channel=primary] .drag-handle").hover()
    page.mouse.down()
    box = card.locator("li[data-channel=backup]").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 5, steps=12)
    page.mouse.up()
    expect(card.locator(".route-notice")).to_have_text("Order saved: primary, backup.")
    assert _order() == ["primary", "backup"]


def test_up_and_down_buttons_reorder_from_the_keyboard(page, gateway, make_user):
    sign_in_admin(page, make_user)
    page.goto("/admin/routes")
    card = page.locator("#route-gpt-4o-mini")
    card.get_by_role("button", name="Move primary down").focus()
    page.keyboard.press("Enter")
    expect(card.locator(".route-notice")).to_have_text("Order saved: backup, primary.")
    assert _steps(card) == ["backup", "primary"] and _order() == ["backup", "primary"]
    card.get_by_role("button", name="Move primary up").click()
    expect(card.locator(".route-notice")).to_have_text("Order saved: primary, backup.")
    assert _order() == ["primary", "backup"]
    assert page.url.endswith("/admin/routes")  # swapped in place, no page load


def test_steps_are_added_and_removed_after_a_confirmation(page, gateway, make_user, tmp_path):
    import_config_text("""
[[channels]]
name = "spare"
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/spare/v1"
api_key = "sk-spare-7777"
lane = "routed"
[channels.models]
"gpt-4o-mini" = "gpt-4o-mini"
""", tmp_path)
    sign_in_admin(page, make_user)
    page.goto("/admin/routes")
    card = page.locator("#route-gpt-4o-mini")
    card.locator("select[name=channel]").select_option("spare")
    card.get_by_role("button", name="Add step").click()
    expect(card.locator(".route-notice")).to_have_text("spare added as the last step.")
    assert _order() == ["primary", "backup", "spare"]
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    card.get_by_role("button", name="Remove backup").click()
    expect(card.locator(".route-notice")).to_have_text("backup removed from the route.")
    assert _order() == ["primary", "spare"] and "Remove backup from the route of gpt-4o-mini?" in dialogs[0]


def test_the_routes_page_fits_a_phone(page, gateway, make_user):
    sign_in_admin(page, make_user)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/admin/routes")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
