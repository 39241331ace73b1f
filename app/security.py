"""Browser-facing hardening: security headers on every answer, Secure cookies over HTTPS, the proxies in front."""
from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from app.proxy.envelopes import dialect

# Scripts and styles come only from our own files, so an injected tag or attribute cannot run.
# data: images are Pico's inline SVG icons (checkboxes, selects); htmx's own inline indicator
# style is switched off in base.html's htmx-config instead of being allowed here.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "same-origin",
}
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts of the domain are not ours to decide
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class SessionCookies(SecureCookieSessionInterface):
    """The session cookie, marked Secure on every HTTPS request, not only when WAYBILL_HTTPS_ONLY says so."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or request.is_secure


def init_app(app: Flask) -> None:
    """Trust the configured proxies, mark cookies Secure over HTTPS, and add the headers to every answer."""
    proxies = app.config.get("WAYBILL_PROXY_FIX", 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies,
                                x_prefix=proxies)
    app.session_interface = SessionCookies()
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    """nosniff (and HSTS over HTTPS) on everything; the page policies on everything but the API."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if dialect() is not None:  # the API: JSON and SSE for SDKs, never framed or rendered as a page
        return response
    for name, value in PAGE_HEADERS.items():
        headers.setdefault(name, value)
    if request.method not in SAFE_METHODS:
        # The answer to a form post may carry what it just made, such as a new API key shown once.
        headers["Cache-Control"] = "no-store"
    return response
