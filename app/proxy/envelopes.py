"""Every API error in the envelope of the API its caller speaks: OpenAI's, Anthropic's or Google's."""
from __future__ import annotations

import re

from flask import Response, jsonify, request

from app.gateway.errors import GatewayError
from app.providers.anthropic_format import anthropic_error
from app.providers.gemini_format import google_error

# Google's methods are `models/{model}:{method}`; OpenAI's paths never hold a colon there.
GEMINI_METHOD = re.compile(r"^/v1/models/.+:[A-Za-z]+$")
# Werkzeug's exception headers describe its HTML body; the JSON body brings its own.
BODY_HEADERS = {"content-type", "content-length"}


def dialect() -> str | None:
    """The API this request speaks, by path: "openai", "anthropic" or "google"; None off the API paths.

    GET /v1/models is both OpenAI's list and Google's (for clients on API version v1); Google's
    clients are told apart by the x-goog-api-key header they send.
    """
    path = request.path
    if path == "/v1beta" or path.startswith("/v1beta/"):
        return "google"
    if path != "/v1" and not path.startswith("/v1/"):
        return None
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    google_models = (path == "/v1/models" or path.startswith("/v1/models/")) and "x-goog-api-key" in request.headers
    return "google" if GEMINI_METHOD.match(path) or google_models else "openai"


def api_error_response(status: int, code: str, message: str, headers: dict | None = None) -> Response | None:
    """The error as JSON in the caller's envelope, or None off the API paths (the site answers those)."""
    if dialect() is None:
        return None
    passed = {name: value for name, value in (headers or {}).items() if name.lower() not in BODY_HEADERS}
    return error_response(GatewayError(status, code, message, headers=passed))


def error_response(error: GatewayError) -> Response:
    """A GatewayError in the caller's envelope, with its Waybill headers and the retry hints for SDKs."""
    kind = dialect() or "openai"
    if kind == "anthropic":
        body = anthropic_error(error.status, error.message)
    elif kind == "google":
        body = google_error(error.status, error.message, reason=error.code, retry_after=error.retry_after)
    else:
        body = openai_error(error.message, error.error_type, error.code)
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    if not error.retryable:
        response.headers["x-should-retry"] = "false"
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def openai_error(message: str, error_type: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error envelope, with every field its schema requires."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
