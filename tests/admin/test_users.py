"""/admin/users: search, a user's wallets and keys, top-ups with a memo naming the admin, disabling, receipts by id."""
from __future__ import annotations

import pytest

from app.accounts.models import User
from app.audit_trail.models import AuditEvent
from app.billing.models import LedgerEntry
from app.billing.wallets import wallet_of
from app.extensions import db
from tests.conftest import assert_ledger_green, csrf_from

HTMX = {"HX-Request": "true"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


@pytest.fixture
def admin(login_as):
    return login_as("admin@example.com", admin=True)


def audit_actions() -> list[tuple[str, str]]:
    db.session.rollback()
    return [(e.action, e.subject) for e in db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id))]


def chat(client, key: str):
    return client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"})


def test_search_matches_part_of_an_email_and_answers_htmx_with_the_list_only(admin, make_user):
    for name in ("alice", "bob", "alicia"):
        make_user(f"{name}@example.org", credit_usd="3")

    page = admin.get("/admin/users").get_data(as_text=True)
    assert 'hx-trigger="input changed delay:300ms, search"' in page and 'hx-indicator="#users-busy"' in page
    assert all(f"{name}@example.org" in page for name in ("alice", "bob", "alicia"))

    found = admin.get("/admin/users?q=ALI", headers=HTMX).get_data(as_text=True)
    assert found.lstrip().startswith('<section id="users"')
    assert "alice@example.org" in found and "alicia@example.org" in found and "bob@example.org" not in found
    assert "$3.00" in found

    nothing = admin.get("/admin/users?q=nobody%25", headers=HTMX).get_data(as_text=True)
    assert "No user’s email contains “nobody%”." in nothing


def test_search_pages_through_many_users(admin, make_user):
    for n in range(27):
        make_user(f"many{n:02d}@example.org")
    first = admin.get("/admin/users?q=many").get_data(as_text=True)
    assert "Page 1 of 2 · 27 in all" in first and "many00@example.org" in first and "many26@example.org" not in first
    second = admin.get("/admin/users?q=many&page=2").get_data(as_text=True)
    assert "many26@example.org" in second and "many00@example.org" not in second


def test_a_users_page_shows_both_wallets_keys_by_prefix_and_latest_receipts(admin, gateway, client):
    assert chat(client, gateway.key).status_code == 200
    user = db.session.get(User, gateway.user_id)
    page = admin.get(f"/admin/users/{user.id}").get_data(as_text=True)

    assert 'id="wallet-credit"' in page and 'id="wallet-routed"' in page
    assert gateway.key[:10] in page and gateway.key not in page  # the prefix, never the secret
    assert "sk-primary-secret-1111" not in page
    assert "Latest receipts" in page and "gpt-4o-mini" in page and "/admin/receipts/rcpt_" in page
    assert "Available" in page and "Reserved" in page


def test_a_top_up_credits_the_wallet_with_a_memo_naming_the_admin_and_is_audited(admin, make_user):
    user = make_user("topped@example.org")
    page = admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    response = admin.post(f"/admin/users/{user.id}/topup", headers=HTMX, data={
        "csrf_token": csrf_from(page), "wallet": "routed", "amount": "12.50", "memo": "  goodwill   for ticket 4711 "})

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="user-wallets"') and "$12.50" in body
    assert "Added $12.50 to the routed wallet of topped@example.org." in body  # the flash, out of band
    db.session.rollback()
    assert wallet_of(user.id, "routed").balance == 12_500_000 and wallet_of(user.id, "credit").balance == 0
    entry = db.session.scalars(db.select(LedgerEntry).where(LedgerEntry.wallet_id == wallet_of(user.id, "routed").id)).one()
    assert (entry.kind, entry.amount, entry.memo) == ("topup", 12_500_000,
                                                       "top-up by admin@example.com: goodwill for ticket 4711")
    event = db.session.scalars(db.select(AuditEvent)).one()
    assert (event.action, event.subject, event.before, event.after) == (
        "wallet_topped_up", "routed wallet of topped@example.org", {"balance": 0},
        {"balance": 12_500_000, "amount": 12_500_000, "ledger_entry": entry.id, "memo": "goodwill for ticket 4711"})
    assert event.actor_id == db.session.scalar(db.select(User.id).where(User.email == "admin@example.com"))
    assert_ledger_green()


@pytest.mark.parametrize("amount, memo, message", [
    ("", "why", "Enter an amount in USD"),
    ("0", "why", "Enter an amount above $0"),
    ("-5", "why", "cannot be negative"),
    ("abc", "why", "not a USD amount"),
    ("1e3", "why", "not a USD amount"),
    ("0.0000001", "why", "more precision than one micro-USD"),
    ("1000000.01", "why", "more than the maximum of $1,000,000"),
    ("5", "   ", "Say why"),
    ("5", "x" * 121, "A memo has at most 120 characters."),
])
def test_a_bad_top_up_changes_nothing(admin, make_user, amount, memo, message):
    user = make_user("unchanged@example.org", credit_usd="1")
    page = admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    response = admin.post(f"/admin/users/{user.id}/topup", headers=HTMX, data={
        "csrf_token": csrf_from(page), "wallet": "credit", "amount": amount, "memo": memo})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.rollback()
    assert wallet_of(user.id, "credit").balance == 1_000_000
    assert db.session.scalar(db.select(db.func.count(LedgerEntry.id))) == 1  # the fixture's own top-up
    assert audit_actions() == []


def test_a_top_up_to_a_wallet_that_does_not_exist_is_refused(admin, make_user):
    user = make_user("odd@example.org")
    page = admin.get(f"/admin/users/{user.id}").get_data(as_text=True)
    response = admin.post(f"/admin/users/{user.id}/topup", headers=HTMX, data={
        "csrf_token": csrf_from(page), "wallet": "savings", "amount": "5", "memo": "why"})
    assert response.status_code == 422 and audit_actions() == []


def as_other_visitor(app, call, *args, **kwargs):
    """A request in an app context of its own: the test's context keeps the signed-in admin in `g`."""
    with app.app_context():
        return call(*args, **kwargs)


def test_disabling_a_user_refuses_their_key_on_the_very_next_request_and_ends_their_sessions(admin, gateway, app):
    user_browser = app.test_client()
    token = csrf_from(as_other_visitor(app, user_browser.get, "/login").get_data(as_text=True))
    assert as_other_visitor(app, user_browser.post, "/login", data={
        "email": "api@example.com", "password": "password123", "csrf_token": token}).status_code == 302
    assert as_other_visitor(app, user_browser.get, "/").status_code == 200
    api = app.test_client()
    assert chat(api, gateway.key).status_code == 200  # the key's grant is now cached

    page = admin.get(f"/admin/users/{gateway.user_id}").get_data(as_text=True)
    assert 'hx-confirm="Disable api@example.com?' in page
    response = admin.post(f"/admin/users/{gateway.user_id}/disable", headers=HTMX, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 200 and "disabled" in response.get_data(as_text=True)

    refused = chat(api, gateway.key)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_api_key"
    assert as_other_visitor(app, user_browser.get, "/").status_code == 302  # signed out
    assert audit_actions()[-1] == ("user_disabled", "api@example.com")

    page = admin.get(f"/admin/users/{gateway.user_id}").get_data(as_text=True)
    assert admin.post(f"/admin/users/{gateway.user_id}/enable", headers=HTMX,
                      data={"csrf_token": csrf_from(page)}).status_code == 200
    assert chat(api, gateway.key).status_code == 200
    assert audit_actions()[-1] == ("user_enabled", "api@example.com")
    assert_ledger_green()


def test_a_disable_reaches_another_app_instance_on_the_same_database_at_once(admin, gateway, database_url):
    from app import create_app
    other = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    other_api = other.test_client()
    assert chat(other_api, gateway.key).status_code == 200  # the other instance caches the grant

    page = admin.get(f"/admin/users/{gateway.user_id}").get_data(as_text=True)
    assert admin.post(f"/admin/users/{gateway.user_id}/disable", data={"csrf_token": csrf_from(page)}).status_code == 200

    assert chat(other_api, gateway.key).status_code == 401
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_an_admin_cannot_disable_themselves(admin):
    me = db.session.scalar(db.select(User).where(User.email == "admin@example.com"))
    page = admin.get(f"/admin/users/{me.id}").get_data(as_text=True)
    assert "Disable user" not in page
    response = admin.post(f"/admin/users/{me.id}/disable", headers=HTMX, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 409 and "you cannot disable your own account" in response.get_data(as_text=True)
    db.session.rollback()
    assert not db.session.get(User, me.id).disabled and audit_actions() == []


def test_any_receipt_opens_by_id_with_its_owner_and_every_fact(admin, gateway, client):
    receipt_id = chat(client, gateway.key).headers["X-Waybill-Receipt"]
    lookup = admin.get(f"/admin/receipts?id=+{receipt_id}+")
    assert lookup.status_code == 302 and lookup.headers["Location"].endswith(f"/admin/receipts/{receipt_id}")

    page = admin.get(f"/admin/receipts/{receipt_id}").get_data(as_text=True)
    for fact in (receipt_id, "api@example.com", "succeeded", "Primary (official)", "<code>primary</code>",
                 "gpt-4o-mini-2024-07-18", "position 1", "reported", "$0.15", "$0.6", "entry #", "Attempts"):
        assert fact in page, fact
    assert "sk-primary-secret-1111" not in page and gateway.key not in page
    assert admin.get("/admin/receipts/rcpt_nope").status_code == 404


def test_users_and_receipt_pages_are_for_admins_only(login_as, make_user, gateway):
    user_client = login_as("plain@example.com")
    for path in ("/admin/users", f"/admin/users/{gateway.user_id}", "/admin/receipts?id=x", "/admin/review"):
        assert user_client.get(path).status_code == 403, path
