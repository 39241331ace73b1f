"""Views for /signup, /login and /logout."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, flash, redirect, url_for
from flask_login import current_user, login_url, login_user, logout_user
from htmx_flask import request

from app.accounts.models import User
from app.accounts.service import authenticate, create_user
from app.auth import bp
from app.auth.forms import LoginForm, SignupForm
from app.errors import ServiceError
from app.extensions import db, login_manager
from app.rendering import render


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """Flask-Login's session lookup."""
    return db.session.get(User, int(user_id))


login_manager.login_view = "auth.login"


@login_manager.unauthorized_handler
def send_to_login():
    """Send a visitor to sign in, coming back afterwards to the page they were on."""
    flash(login_manager.login_message, login_manager.login_message_category)
    if request.htmx:  # htmx would follow a 302 inside its swap; have the browser load the login page instead
        return Response(status=401, headers={"HX-Redirect": login_url("auth.login", request.htmx.current_url)})
    return redirect(login_url("auth.login", request.url))


def _safe_next(default: str) -> str:
    """Follow ?next= only to a path on this site."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    return target if target.startswith("/") and not parts.netloc and not parts.scheme else default


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data, form.password.data)
        except ServiceError as exc:
            form.email.errors.append(str(exc))
        else:
            login_user(user)
            flash("Welcome to Waybill. Your wallets are open.", "success")
            return redirect(url_for("user.dashboard"))
    return render("auth/signup.html", form=form, status=400 if form.errors else 200)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("user.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user:
            login_user(user)
            return redirect(_safe_next(url_for("user.dashboard")))
        form.password.errors.append("Wrong email or password.")
    return render("auth/login.html", form=form, status=400 if form.errors else 200)


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    # GET works too so a bookmarked /logout signs out; signing out is harmless to forge.
    logout_user()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))
