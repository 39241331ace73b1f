"""The one helper that decides between a full page and an htmx fragment."""
from __future__ import annotations

from flask import make_response, render_template, session
from htmx_flask import request


def render(page: str, fragment: str | None = None, status: int = 200, **context):
    """Render the fragment for an htmx request (not a history restore), else the whole page."""
    wants_fragment = fragment is not None and request.htmx and not request.htmx.history_restore_request
    body = render_template(fragment if wants_fragment else page, **context)
    if wants_fragment:
        body += _flashes_out_of_band(status)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def _flashes_out_of_band(status: int) -> str:
    """The flash region, for htmx to swap in beside the fragment, so a mutation's flash shows at once."""
    # Sent only when flashes are pending, or on an error (clearing stale ones): a polling panel must not wipe them.
    if not session.get("_flashes") and status < 400:
        return ""
    return render_template("_flashes.html", out_of_band=True)


def usd(micros: int | None) -> str:
    """Jinja filter: micro-USD as dollars, to the micro-dollar."""
    from app.billing.pricing import format_usd
    return "—" if micros is None else f"${format_usd(micros)}"


def init_app(app) -> None:
    """Register the template filters every page uses."""
    app.add_template_filter(usd, "usd")
