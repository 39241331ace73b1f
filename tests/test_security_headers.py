"""Security headers on every answer, cookie flags, HTTPS behind a configurable proxy, and no-store for new keys."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from app.config import load_config
from tests.conftest import csrf_from

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HTTPS = "https://localhost"


def csp_of(response) -> dict[str, str]:
    """The Content-Security-Policy as directive -> sources."""
    policy = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def session_cookie_header(response) -> str:
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    return header


def test_pages_get_a_strict_csp_and_the_framing_sniffing_and_referrer_headers(client):
    response = client.get("/login")
    csp = csp_of(response)
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'" and "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP: a browser would ignore it anyway


def test_error_pages_and_static_files_get_them_too(client):
    assert "frame-ancestors 'none'" in client.get("/no-such-page").headers["Content-Security-Policy"]
    assert client.get("/static/waybill.css").headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/v1/models", "/v1/no-such-path", "/v1beta/models"])
def test_api_answers_get_nosniff_and_no_page_policies(client, path):
    response = client.get(path)
    assert response.status_code in (401, 404) and response.is_json
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in response.headers


def first_visit(app, **kwargs):
    """A new browser's first page, in a fresh app context (Flask-WTF keeps the token it made in `g`)."""
    with app.app_context():
        return app.test_client().get("/login", **kwargs)


def test_session_cookies_are_httponly_and_lax_and_secure_only_over_https(app):
    plain = session_cookie_header(first_visit(app))
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    secure = first_visit(app, base_url=HTTPS)
    assert "Secure" in session_cookie_header(secure) and "SameSite=Lax" in session_cookie_header(secure)
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_https_only_marks_cookies_secure_everywhere_and_proxy_fix_counts_proxies(app, monkeypatch):
    monkeypatch.setenv("WAYBILL_HTTPS_ONLY", "1")
    monkeypatch.setenv("WAYBILL_PROXY_FIX", "2")
    config = load_config(app.instance_path)
    assert config["SESSION_COOKIE_SECURE"] is True and config["WAYBILL_PROXY_FIX"] == 2
    monkeypatch.delenv("WAYBILL_HTTPS_ONLY")
    monkeypatch.delenv("WAYBILL_PROXY_FIX")
    config = load_config(app.instance_path)
    assert config["SESSION_COOKIE_SECURE"] is False and config["WAYBILL_PROXY_FIX"] == 0


@pytest.fixture
def proxied_app(database_url, instance_dir):
    """The app as deployed behind one reverse proxy that terminates TLS."""
    from app import create_app
    application = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True, "WAYBILL_PROXY_FIX": 1})
    yield application
    with application.app_context():
        from app.extensions import db
        db.engine.dispose()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.50", "X-Forwarded-Host": "waybill.example"}


def test_behind_a_configured_proxy_https_is_detected(proxied_app):
    response = proxied_app.test_client().get("/login", headers=FORWARDED)
    assert "Secure" in session_cookie_header(response)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_without_proxy_fix_forwarded_headers_are_not_trusted(client):
    response = client.get("/login", headers=FORWARDED)
    assert "Secure" not in session_cookie_header(response) and "Strict-Transport-Security" not in response.headers


def test_the_page_showing_a_new_key_is_not_stored(client, login_as):
    login_as()
    page = client.get("/keys")
    assert "no-store" not in page.headers.get("Cache-Control", "")
    form = {"name": "laptop", "lanes": ["official"], "csrf_token": csrf_from(page.get_data(as_text=True))}
    issued = client.post("/keys", data=form)
    assert issued.status_code == 200 and "wb-" in issued.get_data(as_text=True)
    assert issued.headers["Cache-Control"] == "no-store"


JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
INLINE_CODE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an on* event-handler attribute"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"\shx-on", re.I), "hx-on (htmx evaluates it as code)"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_no_template_has_inline_code_or_styles_the_csp_would_block():
    found = [f"{path.relative_to(TEMPLATES)}: {what}"
             for path in sorted(TEMPLATES.rglob("*.html")) for pattern, what in INLINE_CODE
             if pattern.search(JINJA_COMMENT.sub("", path.read_text()))]
    assert found == []


def test_htmx_is_told_not_to_inject_its_inline_indicator_style(client):
    meta = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', client.get("/login").get_data(as_text=True))
    assert json.loads(html.unescape(meta.group(1)))["includeIndicatorStyles"] is False
