"""The API keys page at /keys: create (scope, lanes, limits), list with spend, and revoke."""
from __future__ import annotations

from flask import abort, flash
from flask_login import current_user

from app.accounts.service import issue_key, keys_of, revoke_key
from app.errors import ServiceError
from app.gateway.activity import charged_by_key
from app.gateway.catalog import ListedModel, models_for
from app.gateway.principal import Principal
from app.rendering import render
from app.user import bp
from app.user.forms import NewKeyForm, RevokeKeyForm


@bp.route("/keys", methods=["GET", "POST"])
def keys():
    scopeable = _scopeable_models()
    form = NewKeyForm(scopeable)
    if not form.validate_on_submit():
        return _keys_page(form, status=422 if form.is_submitted() else 200)
    try:
        issued = issue_key(current_user, **form.key_settings(), known_models={m.id for m in scopeable})
    except ServiceError as exc:
        form.form_errors.append(str(exc))
        return _keys_page(form, status=422)
    return _keys_page(NewKeyForm(scopeable, formdata=None), issued=issued)


@bp.route("/keys/<int:key_id>/revoke", methods=["POST"])
def revoke(key_id: int):
    if not RevokeKeyForm().validate_on_submit() or not revoke_key(current_user.id, key_id):
        abort(404)
    flash("Key revoked. Requests with it now get 401.", "success")  # render sends it out of band to htmx
    return _keys_page(NewKeyForm(_scopeable_models(), formdata=None))


def _scopeable_models() -> list[ListedModel]:
    """The models a key can be limited to: every published model with a route, as the signed-in user sees them."""
    return models_for(Principal(user_id=current_user.id, api_key_id=None))


def _keys_page(form: NewKeyForm, issued=None, status: int = 200):
    """The keys page, or its fragment: a just-issued secret, the new-key form, and the user's keys."""
    return render("user/keys.html", "user/_keys.html", status=status, form=form, issued=issued,
                  keys=keys_of(current_user.id), spent=charged_by_key(current_user.id))
