"""Error pages in the site's layout, their htmx fragments, and API paths answered in the caller's envelope."""
from __future__ import annotations

import sys
import types

import pytest
from flask import jsonify, request
from sqlalchemy import text

from app.accounts.models import ApiKey
from app.extensions import db
from tests.conftest import csrf_from

HTMX = {"HX-Request": "true"}
OUT_OF_BAND_FLASHES = '<div id="flashes" aria-live="polite" hx-swap-oob="innerHTML">'


def body_of(response) -> str:
    return response.get_data(as_text=True)


def assert_error_page(response, status: int, title: str) -> str:
    """The response is a whole page in the layout, titled for the error; returns its body."""
    body = body_of(response)
    assert response.status_code == status
    assert f"<title>{title} · Waybill</title>" in body and "<nav>" in body and 'id="flashes"' in body
    assert "Traceback" not in body and "HX-Request" in response.headers["Vary"]
    return body


def assert_error_fragment(response, status: int, title: str) -> str:
    """The response is the small error fragment, placed by htmx in the flash region; returns its body."""
    body = body_of(response)
    assert response.status_code == status and "<html" not in body
    assert body.startswith('<p id="error" class="flash flash-error" role="alert">') and f"<strong>{title}.</strong>" in body
    assert (response.headers["HX-Retarget"], response.headers["HX-Reswap"]) == ("#flashes", "afterbegin")
    return body


@pytest.fixture
def failing_routes(app):
    """Throwaway routes that fail: an exception with secrets in it, and a query on a missing table."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as production does, not re-raise into the test

    def explode():
        raise RuntimeError("secret internals sk-live-1234")

    def bad_query():
        db.session.execute(text("SELECT * FROM no_such_table"))
    app.add_url_rule("/boom", "boom", explode)
    app.add_url_rule("/v1/boom", "api_boom", explode)
    app.add_url_rule("/bad-query", "bad_query", bad_query)
    return app


def test_a_missing_page_is_a_404_in_the_layout(client):
    body = assert_error_page(client.get("/no-such-page"), 404, "Page not found")
    assert "Nothing lives at this address" in body and "Sign up" in body  # the visitor's navigation


def test_a_signed_in_user_gets_the_404_page_with_their_navigation(login_as):
    body = assert_error_page(login_as().get("/wallets/gold"), 404, "Page not found")
    assert "API keys" in body and "Back to your dashboard" in body


def test_the_admin_area_is_a_403_page_for_other_users(login_as):
    assert_error_page(login_as().get("/admin/"), 403, "Not allowed")


def test_a_post_without_a_csrf_token_gets_the_expired_form_page(login_as):
    body = assert_error_page(login_as().post("/keys", data={"name": "laptop"}), 400, "Form expired")
    assert "Reload the page" in body
    assert db.session.scalar(db.select(db.func.count(ApiKey.id))) == 0


def test_a_wrong_method_is_a_405_page_that_names_the_allowed_ones(login_as):
    response = login_as().get("/keys/1/revoke")
    assert_error_page(response, 405, "Method not allowed")
    assert "POST" in response.headers["Allow"]


def test_a_body_over_the_limit_is_a_413_page(app, login_as):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    assert_error_page(login_as().post("/keys", data={"name": "x" * 4096}), 413, "Request too large")


def test_an_unexpected_error_is_a_500_page_without_a_traceback_and_is_logged(failing_routes, client, caplog):
    body = assert_error_page(client.get("/boom"), 500, "Something went wrong")
    assert "secret internals" not in body and "sk-live" not in body
    assert any(record.exc_info and record.exc_info[0] is RuntimeError for record in caplog.records)


def test_a_500_after_a_failed_query_still_renders_the_signed_in_layout(failing_routes, login_as):
    # On PostgreSQL the failed statement aborts the transaction that the layout's current_user would need.
    client = login_as()
    with failing_routes.app_context():  # a fresh `g`, so current_user is loaded from the database again
        body = assert_error_page(client.get("/bad-query"), 500, "Something went wrong")
    assert "API keys" in body and "no_such_table" not in body


def test_an_htmx_error_is_a_fragment_for_the_flash_region(login_as):
    body = assert_error_fragment(login_as().get("/wallets/gold", headers=HTMX), 404, "Page not found")
    # The flash region comes along emptied, so the error never sits beside a stale flash.
    assert "<p" not in body.split(OUT_OF_BAND_FLASHES)[1]


def test_an_htmx_error_brings_pending_flashes_out_of_band(client, login_as):
    login_as()
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})  # flashes "Signed out."
    body = assert_error_fragment(client.get("/no-such-page", headers=HTMX), 404, "Page not found")
    assert OUT_OF_BAND_FLASHES in body and '<p class="flash flash-info">Signed out.</p>' in body


def test_an_htmx_post_without_a_csrf_token_gets_the_expired_form_fragment(login_as):
    assert_error_fragment(login_as().post("/keys/1/revoke", headers=HTMX), 400, "Form expired")


def test_a_history_restore_gets_the_whole_error_page(login_as):
    headers = {**HTMX, "HX-History-Restore-Request": "true"}
    assert_error_page(login_as().get("/wallets/gold", headers=headers), 404, "Page not found")


@pytest.fixture
def envelopes(monkeypatch):
    """A stand-in for app.proxy.envelopes: a JSON error under /v1, None elsewhere."""
    def api_error_response(status, code, message, headers=None):
        if not request.path.startswith("/v1"):
            return None
        response = jsonify({"error": {"code": code, "message": message}})
        response.status_code = status
        response.headers.update(headers or {})
        return response
    monkeypatch.setitem(sys.modules, "app.proxy.envelopes", types.SimpleNamespace(api_error_response=api_error_response))


@pytest.mark.parametrize("method, path, status, code, message", [
    ("GET", "/v1/no-such-thing", 404, "not_found", "Not Found: GET /v1/no-such-thing"),
    ("DELETE", "/v1/models", 405, "method_not_allowed", "Method Not Allowed: DELETE /v1/models"),
    ("GET", "/v1/boom", 500, "internal_error", "Internal Server Error: GET /v1/boom"),
])
def test_api_paths_answer_in_the_envelope_with_the_code_for_the_status(envelopes, failing_routes, client, method,
                                                                       path, status, code, message):
    response = client.open(path, method=method)
    assert (response.status_code, response.get_json()) == (status, {"error": {"code": code, "message": message}})
    if status == 405:
        assert "GET" in response.headers["Allow"]


def test_pages_still_answer_html_when_the_envelope_declines(envelopes, client):
    assert_error_page(client.get("/no-such-page"), 404, "Page not found")


def test_an_unknown_api_path_is_json_with_the_real_envelopes(client):
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_in_chromium_a_revoke_flashes_at_once_and_a_failed_action_shows_its_error(page, make_user):  # noqa: F811
    from app.accounts.service import issue_key
    user = make_user("browser@example.com")
    issue_key(user, "laptop")
    issue_key(user, "phone")
    page.goto("/login")
    page.fill("input[name=email]", "browser@example.com")
    page.fill("input[name=password]", "password123")
    page.click("button[type=submit]")
    page.goto("/keys")
    page.on("dialog", lambda dialog: dialog.accept())

    page.click("#api-keys tr:has-text('laptop') button:has-text('Revoke')")
    page.locator("#flashes").get_by_text("Key revoked").wait_for()

    # A token that has gone stale: the 400 lands in the flash region and leaves the keys table alone.
    page.evaluate("document.body.setAttribute('hx-headers', JSON.stringify({'X-CSRFToken': 'stale'}));"
                  "document.querySelectorAll('input[name=csrf_token]').forEach(field => field.value = 'stale')")
    page.click("#api-keys tr:has-text('phone') button:has-text('Revoke')")
    page.locator("#flashes #error").get_by_text("Form expired").wait_for()
    assert page.locator("#flashes").get_by_text("Key revoked").count() == 0
    assert page.locator("#api-keys tr:has-text('phone')").get_by_text("Revoke").is_visible()
