"""The one helper that decides between a full page and an htmx fragment."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask import make_response, render_template, session
from htmx_flask import request

from app.billing.pricing import MICROS_PER_USD
from app.database import utcnow


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
    """Jinja filter: micro-USD as dollars, sign first, exact: -$0.000263, $12.50, $1,234.567891."""
    if micros is None:
        return "—"
    dollars = Decimal(abs(micros)) / MICROS_PER_USD
    # Cents at least, micro-dollars at most: nothing is rounded away, and no trailing zeros past the cents.
    places = max(2, -dollars.normalize().as_tuple().exponent) if dollars else 2
    return f"{'-' if micros < 0 else ''}${dollars:,.{places}f}"


def ago(moment: datetime | None) -> str:
    """Jinja filter: how long ago, in words: "just now", "3 min ago", "2 h ago", "5 days ago"."""
    if moment is None:
        return "never"
    seconds = int((utcnow() - moment).total_seconds())
    if seconds < 45:
        return "just now" if seconds > -45 else "in the future"
    for unit_seconds, unit in ((86_400, "day"), (3_600, "h"), (60, "min")):
        if seconds >= unit_seconds:
            count = round(seconds / unit_seconds)
            return f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''} ago"
    return "1 min ago"


def init_app(app) -> None:
    """Register the template filters every page uses."""
    app.add_template_filter(usd, "usd")
    app.add_template_filter(ago, "ago")
