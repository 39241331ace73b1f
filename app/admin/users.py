"""/admin/users: search users, see a user's wallets, keys and receipts, top up a wallet, disable or enable."""
from __future__ import annotations

from flask import abort, flash
from flask_login import current_user
from htmx_flask import request

from app.accounts.admin import balances_of, get_user, search_users, set_disabled, top_up
from app.accounts.models import User
from app.accounts.service import keys_of
from app.admin import bp
from app.admin.user_forms import ActionForm, TopUpForm
from app.billing.wallets import wallets_of
from app.errors import ServiceError
from app.gateway.activity import charged_by_key, latest_receipts
from app.rendering import render, usd

LATEST_RECEIPTS = 10


@bp.route("/users")
def users():
    query = request.args.get("q", "").strip()[:254]
    found = search_users(query, request.args.get("page", 1, type=int))
    return render("admin/users.html", "admin/_users.html", query=query, found=found,
                  wallets=balances_of(user.id for user in found.items))


def _user_or_404(user_id: int) -> User:
    user = get_user(user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/users/<int:user_id>")
def user(user_id: int):
    return _user_page(_user_or_404(user_id))


def _user_page(user: User, fragment: str | None = None, status: int = 200, topup: TopUpForm | None = None):
    """The user's page or one of its panels: both wallets with the top-up form, access, keys, latest receipts."""
    return render("admin/user.html", fragment, status=status, user=user, wallets=wallets_of(user.id),
                  keys=keys_of(user.id), spent=charged_by_key(user.id), receipts=latest_receipts(user.id, LATEST_RECEIPTS),
                  topup=topup or TopUpForm(formdata=None), action=ActionForm(formdata=None))


@bp.route("/users/<int:user_id>/topup", methods=["POST"])
def user_topup(user_id: int):
    user, form = _user_or_404(user_id), TopUpForm()
    if not form.validate_on_submit():
        return _user_page(user, "admin/_user_wallets.html", 422, form)
    try:
        top_up(current_user, user.id, form.wallet.data, form.amount.data, form.memo.data)
    except ServiceError as refused:
        form.form_errors.append(str(refused))
        return _user_page(user, "admin/_user_wallets.html", 422, form)
    flash(f"Added {usd(form.amount.data)} to the {form.wallet.data} wallet of {user.email}.", "success")
    return _user_page(user, "admin/_user_wallets.html")


@bp.route("/users/<int:user_id>/<any(disable, enable):change>", methods=["POST"])
def user_access(user_id: int, change: str):
    user = _user_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        user = set_disabled(current_user, user.id, disabled=change == "disable")
    except ServiceError as refused:
        flash(str(refused), "error")
        return _user_page(user, "admin/_user_access.html", 409)
    flash(f"{user.email} is {'disabled: their keys get 401 and their sessions ended' if user.disabled else 'enabled again'}.",
          "success")
    return _user_page(user, "admin/_user_access.html")
