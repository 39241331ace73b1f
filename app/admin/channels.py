"""/admin/channels: every upstream by lane, created and edited with a write-only key, tested on demand."""
from __future__ import annotations

from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user
from htmx_flask import request as htmx_request
from werkzeug.exceptions import NotFound

from app.admin import bp
from app.admin.forms import ChannelForm
from app.errors import on_http_error
from app.gateway.probe import ProbeRefused, probe_channel
from app.rendering import render
from app.routing.admin import (
    ChannelInvalid, ChannelNotFound, catalog_choices, channel_row, channel_rows, clear_channel_key, create_channel,
    get_channel, key_display, set_channel_enabled, update_channel,
)


@bp.errorhandler(ChannelNotFound)
def _no_such_channel(_error):
    return on_http_error(NotFound())


@bp.route("/channels")
def channels():
    return render("admin/channels.html", lanes=channel_rows())


@bp.route("/channels/new", methods=["GET", "POST"])
def new_channel():
    form = ChannelForm()
    if form.edit_rows(request.form.get("action")) or not form.validate_on_submit():
        return _form_page(form, None, status=422 if form.is_submitted() and form.has_problems else 200)
    try:
        channel = create_channel(current_user.id, form.channel_table())
    except ChannelInvalid as exc:
        form.show_problems(exc.problems)
        return _form_page(form, None, status=422)
    flash(f"Channel {channel.name} created.", "success")
    return _go_to(url_for("admin.channels"))


@bp.route("/channels/<int:channel_id>", methods=["GET", "POST"])
def channel(channel_id: int):
    form = ChannelForm(channel=get_channel(channel_id) if request.method == "GET" else None)
    if form.edit_rows(request.form.get("action")) or not form.validate_on_submit():
        return _form_page(form, channel_id, status=422 if form.is_submitted() and form.has_problems else 200)
    try:
        saved = update_channel(current_user.id, channel_id, form.channel_table())
    except ChannelInvalid as exc:
        form.show_problems(exc.problems)
        return _form_page(form, channel_id, status=422)
    flash(f"Channel {saved.name} saved.", "success")
    return _go_to(url_for("admin.channels"))


@bp.route("/channels/<int:channel_id>/enable", methods=["POST"])
def enable_channel(channel_id: int):
    set_channel_enabled(current_user.id, channel_id, True)
    return _row(channel_id)


@bp.route("/channels/<int:channel_id>/disable", methods=["POST"])
def disable_channel(channel_id: int):
    set_channel_enabled(current_user.id, channel_id, False)
    return _row(channel_id)


@bp.route("/channels/<int:channel_id>/key/clear", methods=["POST"])
def clear_key(channel_id: int):
    channel = clear_channel_key(current_user.id, channel_id)
    flash(f"The key of {channel.name} was cleared; it is skipped until a key is set.", "success")
    return _form_page(ChannelForm(channel=channel, formdata=None), channel_id, fragment="admin/_channel_key.html")


@bp.route("/channels/<int:channel_id>/test", methods=["POST"])
def test_channel(channel_id: int):
    try:
        result, refused = probe_channel(current_user.id, channel_id, request.form.get("model") or None), None
    except ProbeRefused as exc:
        result, refused = None, str(exc)
    test = {"channel_id": channel_id, "result": result, "refused": refused}
    return render("admin/channels.html", "admin/_channel_test.html", status=200 if result else 422,
                  lanes=channel_rows(), channel=get_channel(channel_id), test=test)


def _row(channel_id: int):
    return render("admin/channels.html", "admin/_channel_row.html", lanes=channel_rows(), row=channel_row(channel_id))


def _form_page(form: ChannelForm, channel_id: int | None, status: int = 200,
               fragment: str = "admin/_channel_form.html"):
    channel = get_channel(channel_id) if channel_id is not None else None
    return render("admin/channel.html", fragment, status=status, form=form, channel=channel,
                  key=key_display(channel) if channel else None, catalog=catalog_choices())


def _go_to(url: str):
    """After a save: a full page load of url, for htmx (HX-Redirect) as for a plain form post."""
    if htmx_request.htmx:
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, 303)
