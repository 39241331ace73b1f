"""The one helper that decides between a full page and an htmx fragment."""
from __future__ import annotations

from datetime import datetime

import nh3
from flask import make_response, render_template, session
from htmx_flask import request
from markdown_it import MarkdownIt
from markupsafe import Markup

from app.billing.pricing import usd_text as usd  # noqa: F401  (the "usd" filter; views import it from here)
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


# Model answers are untrusted: Markdown's raw HTML is off, and nh3 keeps only these tags (no images:
# an answer must not make the browser fetch anything), with links marked rel="noopener nofollow".
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
MARKDOWN_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong", "em", "del", "code", "pre",
                 "blockquote", "a", "table", "thead", "tbody", "tr", "th", "td", "hr", "br"}


def markdown(text: str | None) -> Markup:
    """Jinja filter: Markdown as sanitised HTML; raw HTML in the text comes out as text."""
    html = MARKDOWN.render(text or "")
    return Markup(nh3.clean(html, tags=MARKDOWN_TAGS, attributes={"a": {"href", "title"}},
                            url_schemes={"http", "https", "mailto"}, link_rel="noopener nofollow"))


def init_app(app) -> None:
    """Register the template filters every page uses."""
    app.add_template_filter(usd, "usd")
    app.add_template_filter(ago, "ago")
    app.add_template_filter(markdown, "markdown")
