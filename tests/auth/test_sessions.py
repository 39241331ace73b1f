"""Sessions end on logout and on a password change, for every copy of the cookie; logout is a POST with CSRF."""
from __future__ import annotations

import time

from itsdangerous import TimestampSigner

from app.accounts.models import User
from app.extensions import db
from tests.auth.test_pages import logout
from tests.conftest import csrf_from

SIGNED_IN_PAGE = "/keys"


def is_signed_in(client) -> bool:
    """Whether the client's cookie still opens a page that needs a sign-in."""
    with client.application.app_context():  # a fresh `g`: Flask-Login loads the user from the cookie again
        return client.get(SIGNED_IN_PAGE).status_code == 200


def replay(app, cookie: str):
    """A brand-new client (another browser, another worker's view of it) carrying a saved session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


def user_row(email: str = "user@example.com") -> User:
    db.session.rollback()  # read what the requests committed, not this session's cached row
    return db.session.scalar(db.select(User).where(User.email == email))


def test_a_cookie_saved_before_logout_no_longer_works(app, client, login_as):
    login_as()
    saved = client.get_cookie("session").value
    assert is_signed_in(replay(app, saved))
    assert logout(client).status_code == 302
    assert not is_signed_in(client)
    assert not is_signed_in(replay(app, saved))


def signed_in_client(app, password: str = "password123"):
    """A fresh client signed in through the login form as user@example.com."""
    device = app.test_client()
    with app.app_context():  # a fresh `g`: the test's own context may remember someone signed in
        token = csrf_from(device.get("/login").get_data(as_text=True))
        device.post("/login", data={"email": "user@example.com", "password": password, "csrf_token": token})
    return device


def test_logout_ends_the_users_other_sessions_too(app, make_user):
    make_user()
    phone, laptop = signed_in_client(app), signed_in_client(app)
    assert is_signed_in(phone) and is_signed_in(laptop)
    logout(phone)
    assert not is_signed_in(laptop)


def test_logout_is_post_only_and_needs_the_csrf_token(client, login_as):
    login_as()
    nonce = user_row().session_nonce
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no token: the "Form expired" page
    assert is_signed_in(client) and user_row().session_nonce == nonce


def test_a_password_change_ends_every_session_and_only_the_new_password_works(app, client, login_as, run_cli):
    login_as()
    saved = client.get_cookie("session").value
    result = run_cli("users", "set-password", "USER@example.com", "--password", "a-new-password")
    assert "password changed for user@example.com" in result.stdout
    assert not is_signed_in(client) and not is_signed_in(replay(app, saved))
    assert not is_signed_in(signed_in_client(app, "password123"))
    assert is_signed_in(signed_in_client(app, "a-new-password"))


def test_set_password_refuses_bad_input_in_one_line_and_changes_nothing(make_user, run_cli):
    make_user()
    before = (user_row().password_hash, user_row().session_nonce)
    for args in (("nobody@example.com", "--password", "long-enough-1"), ("user@example.com", "--password", "short")):
        result = run_cli("users", "set-password", *args, check_rc=2)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (user_row().password_hash, user_row().session_nonce) == before


def test_a_disabled_users_session_ends(client, login_as):
    login_as()
    user = user_row()
    user.disabled = True
    db.session.commit()
    assert not is_signed_in(client)


def test_a_session_from_before_nonces_is_not_accepted(app, make_user):
    user = make_user()
    serializer = app.session_interface.get_signing_serializer(app)
    legacy = replay(app, serializer.dumps({"_user_id": str(user.id), "_fresh": True}))
    assert not is_signed_in(legacy)


def test_csrf_tokens_expire(app, client, make_user, monkeypatch):
    make_user()
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 8 * 3600
    token = csrf_from(client.get("/login").get_data(as_text=True))
    nine_hours_later = int(time.time()) + 9 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: nine_hours_later)
    response = client.post("/login", data={"email": "user@example.com", "password": "password123", "csrf_token": token})
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)
    assert not is_signed_in(client)
