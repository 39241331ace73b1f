"""The API keys page at /keys: create, list and revoke."""
from __future__ import annotations

from flask import abort, flash
from flask_login import current_user

from app.accounts.service import issue_key, revoke_key
from app.rendering import render
from app.user import bp
from app.user.forms import NewKeyForm, RevokeKeyForm


@bp.route("/keys", methods=["GET", "POST"])
def keys():
    form, issued = NewKeyForm(), None
    if form.validate_on_submit():
        issued = issue_key(current_user, name=form.name.data, lanes=form.lanes.data)
    return _keys_page(form, issued)


@bp.route("/keys/<int:key_id>/revoke", methods=["POST"])
def revoke(key_id: int):
    if not RevokeKeyForm().validate_on_submit() or not revoke_key(current_user.id, key_id):
        abort(404)
    flash("Key revoked. Requests with it now get 401.", "info")  # render sends it out of band to htmx
    return _keys_page(NewKeyForm(formdata=None))


def _keys_page(form: NewKeyForm, issued=None):
    """The keys page, or its fragment: the user's keys, the new-key form, and a just-issued secret."""
    return render("user/keys.html", "user/_keys.html", form=form, issued=issued,
                  revoke_form=RevokeKeyForm(), keys=current_user.api_keys)
