"""Views for /signup, /login and /logout."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, flash, redirect, url_for
from flask_login import current_user, login_url, login_user, logout_user
from htmx_flask import request

from app.accounts.models import User
from app.accounts.service import create_user, end_sessions, user_for_session
from app.auth import bp
from app.auth.forms import LoginForm, SignupForm
from app.auth.throttle import LoginThrottled, sign_in
from app.errors import ServiceError
from app.extensions import login_manager
from app.rendering import render


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Flask-Login's session lookup: a session ended by logout or a password change finds no one."""
    return user_for_session(session_id)


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
        try:
            user = sign_in(form.email.data, form.password.data, request.remote_addr)
        except LoginThrottled as refused:
            return _throttled(form, refused)
        if user:
            login_user(user)
            return redirect(_safe_next(url_for("user.dashboard")))
        form.password.errors.append("Wrong email or password.")
    return render("auth/login.html", form=form, status=400 if form.errors else 200)


def _throttled(form: LoginForm, refused: LoginThrottled):
    """The login page with the throttle's message, as a 429 that says when to come back."""
    form.password.errors.append(str(refused))
    response = render("auth/login.html", form=form, status=429)
    response.headers["Retry-After"] = str(refused.retry_after_s)
    return response


@bp.route("/logout", methods=["POST"])
def logout():
    # POST only, behind CSRF: a link or an image on another site must not sign anyone out.
    if current_user.is_authenticated:
        end_sessions(current_user.id)  # the cookie alone is not enough: a copy of it must stop working too
    logout_user()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))
