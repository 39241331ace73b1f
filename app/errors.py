"""The one errors module: the error services raise, and the answer every failed request gets."""
from __future__ import annotations

from dataclasses import dataclass

from flask import request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.rendering import render


class ServiceError(Exception):
    """A refused request, with a one-line message fit to show the person who made it."""


@dataclass(frozen=True)
class ErrorKind:
    """How one kind of error reads: its code for API clients, a title and a hint for people."""

    code: str
    title: str
    hint: str


KINDS = {
    400: ErrorKind("invalid_request", "Bad request", "Waybill could not read that request."),
    403: ErrorKind("forbidden", "Not allowed", "Your account does not have access to this page."),
    404: ErrorKind("not_found", "Page not found",
                   "Nothing lives at this address. Check the link, or start again from the dashboard."),
    405: ErrorKind("method_not_allowed", "Method not allowed", "This address does not take that kind of request."),
    413: ErrorKind("request_too_large", "Request too large", "What you sent is larger than Waybill accepts."),
    500: ErrorKind("internal_error", "Something went wrong",
                   "Waybill hit an internal error. It has been logged; please try again in a moment."),
}
CSRF_FAILURE = ErrorKind("invalid_request", "Form expired",
                         "The form's security token was missing or out of date. Reload the page and send it again.")

# htmx swaps an error into the flash region (base.html), never into the element that asked.
HTMX_PLACEMENT = {"HX-Retarget": "#flashes", "HX-Reswap": "afterbegin"}


def init_app(app) -> None:
    """Answer HTTP errors and CSRF failures in the site's layout, or in the caller's envelope under the API."""
    for status in KINDS:
        app.register_error_handler(status, on_http_error)
    app.register_error_handler(CSRFError, on_csrf_error)


def on_http_error(error: HTTPException):
    """A page (or fragment, or API error) for a 4xx/5xx; Flask has already logged an unhandled exception."""
    if error.code >= 500:
        db.session.rollback()  # a failed transaction would break the layout's own queries (current_user)
    return error_answer(error, KINDS[error.code])


def on_csrf_error(error: CSRFError):
    """A CSRF failure reads as an expired form, not as a bare 400."""
    return error_answer(error, CSRF_FAILURE)


def error_answer(error: HTTPException, kind: ErrorKind):
    """JSON in the caller's envelope on an API path, else the error page or, for htmx, its fragment."""
    headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else {}
    api_answer = _api_error(error.code, kind.code, _api_message(error), headers)
    if api_answer is not None:
        return api_answer
    response = render("errors/error.html", "errors/_error.html", status=error.code, kind=kind, http_status=error.code)
    response.headers.update({**headers, **HTMX_PLACEMENT})
    return response


def _api_message(error: HTTPException) -> str:
    """The abort's own description when it gave one, else the status and the request line (never a traceback)."""
    if error.description != type(error).description:
        return error.description
    return f"{error.name}: {request.method} {request.path}"


def _api_error(status: int, code: str, message: str, headers: dict):
    """The API envelope's answer, or None off the API."""
    # Imported here: services import this module for ServiceError, and the proxy imports the services.
    from app.proxy.envelopes import api_error_response
    return api_error_response(status, code, message, headers)
