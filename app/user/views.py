"""Views for /, /wallets/<kind> and /keys."""
from __future__ import annotations

from flask import abort, flash
from flask_login import current_user, login_required

from app.accounts.service import issue_key, revoke_key
from app.billing.ledger import recent_entries
from app.billing.models import WalletKind
from app.billing.wallets import wallets_of
from app.rendering import render
from app.user import bp
from app.user.forms import NewKeyForm, RevokeKeyForm


@bp.route("/")
@login_required
def dashboard():
    wallets = wallets_of(current_user.id)
    names = {w.id: w.kind for w in wallets.values()}
    return render("user/dashboard.html", wallets=wallets, wallet_names=names,
                  entries=recent_entries(list(names), 10))


@bp.route("/wallets/<kind>")
@login_required
def wallet(kind: str):
    if kind not in {k.value for k in WalletKind}:
        abort(404)
    wallet = wallets_of(current_user.id)[kind]
    return render("user/wallet.html", wallet=wallet, entries=recent_entries([wallet.id], 200))


@bp.route("/keys", methods=["GET", "POST"])
@login_required
def keys():
    form, issued = NewKeyForm(), None
    if form.validate_on_submit():
        issued = issue_key(current_user, name=form.name.data, lanes=form.lanes.data)
    return _keys_page(form, issued)


@bp.route("/keys/<int:key_id>/revoke", methods=["POST"])
@login_required
def revoke(key_id: int):
    if not RevokeKeyForm().validate_on_submit() or not revoke_key(current_user.id, key_id):
        abort(404)
    flash("Key revoked. Requests with it now get 401.", "info")  # render sends it out of band to htmx
    return _keys_page(NewKeyForm(formdata=None))


def _keys_page(form: NewKeyForm, issued=None):
    """The keys page, or its fragment: the user's keys, the new-key form, and a just-issued secret."""
    return render("user/keys.html", "user/_keys.html", form=form, issued=issued,
                  revoke_form=RevokeKeyForm(), keys=current_user.api_keys)
