"""The one helper that decides between a full page and an htmx fragment."""
from __future__ import annotations

from flask import make_response, render_template
from htmx_flask import request


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """Render the fragment for an htmx request (not a history restore), else the whole page."""
    wants_fragment = fragment is not None and request.htmx and not request.htmx.history_restore_request
    response = make_response(render_template(fragment if wants_fragment else page, **context), status)
    response.vary.add("HX-Request")
    return response


def usd(micros: int | None) -> str:
    """Jinja filter: micro-USD as dollars, to the micro-dollar."""
    from app.billing.pricing import format_usd
    return "—" if micros is None else f"${format_usd(micros)}"


def init_app(app) -> None:
    """Register the template filters every page uses."""
    app.add_template_filter(usd, "usd")
