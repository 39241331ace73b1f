"""Sign-up, sign-in and sign-out through the real forms, with CSRF on."""
from __future__ import annotations

from app.accounts.models import User
from app.billing.wallets import wallets_of
from app.extensions import db
from tests.conftest import csrf_from


def _signup(client, email="new@example.com", password="password123"):
    token = csrf_from(client.get("/signup").get_data(as_text=True))
    return client.post("/signup", data={"email": email, "password": password, "csrf_token": token})


def test_signup_opens_two_empty_wallets_and_signs_in(client):
    response = _signup(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    user = db.session.scalar(db.select(User).where(User.email == "new@example.com"))
    assert {k: (w.balance, w.reserved) for k, w in wallets_of(user.id).items()} == {"credit": (0, 0), "routed": (0, 0)}
    page = client.get("/").get_data(as_text=True)
    assert "Your wallets" in page and "$0.00" in page


def test_signup_refuses_a_duplicate_email_and_a_short_password(client, make_user):
    make_user("taken@example.com")
    assert "already exists" in _signup(client, "TAKEN@example.com").get_data(as_text=True)
    response = _signup(client, "short@example.com", "short")
    assert response.status_code == 400
    assert db.session.scalar(db.select(db.func.count(User.id))) == 1


def logout(client):
    """Sign out the way the nav's button does: a POST with the page's CSRF token."""
    return client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})


def session_of(app, client) -> dict:
    """The session as the app reads it from the client's signed cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


def test_post_without_csrf_token_is_refused(app, client, make_user):
    make_user()
    client.get("/login")
    response = client.post("/login", data={"email": "user@example.com", "password": "password123"})
    assert response.status_code == 400
    session = session_of(app, client)
    assert "csrf_token" in session and "_user_id" not in session
    assert client.get("/").status_code == 302


def test_login_with_a_wrong_password_fails_and_logout_signs_out(app, client, login_as):
    login_as()
    user = db.session.scalar(db.select(User).where(User.email == "user@example.com"))
    assert session_of(app, client)["_user_id"] == f"{user.id}:{user.session_nonce}"
    assert client.get("/").status_code == 200
    logout(client)
    assert "_user_id" not in session_of(app, client)
    assert client.get("/").status_code == 302
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "user@example.com", "password": "wrong-password", "csrf_token": token})
    assert response.status_code == 400 and "Wrong email or password" in response.get_data(as_text=True)


def test_login_follows_only_local_next_urls(client, make_user):
    make_user()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    data = {"email": "user@example.com", "password": "password123", "csrf_token": token}
    assert client.post("/login?next=https://evil.example/", data=data).headers["Location"] == "/"
    logout(client)
    token = csrf_from(client.get("/login").get_data(as_text=True))
    data["csrf_token"] = token
    assert client.post("/login?next=/keys", data=data).headers["Location"] == "/keys"


def test_disabled_user_cannot_sign_in(client, make_user):
    user = make_user()
    user.disabled = True
    db.session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "user@example.com", "password": "password123", "csrf_token": token})
    assert response.status_code == 400


def test_admin_area_is_for_admins_only(client, login_as):
    assert client.get("/admin/").status_code == 302  # visitors are sent to sign in
    login_as("plain@example.com")
    assert client.get("/admin/").status_code == 403
    logout(client)
    login_as("boss@example.com", admin=True)
    assert client.get("/admin/").status_code == 200


def test_a_visitor_is_sent_to_sign_in_and_back(client):
    response = client.get("/keys")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=%2Fkeys"
    assert "Please log in" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_an_htmx_request_from_a_visitor_loads_the_login_page_in_full(client):
    # Following a 302 inside htmx would swap the whole login page into the fragment's place.
    response = client.get("/keys", headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/keys"})
    assert response.status_code == 401 and response.headers["HX-Redirect"] == "/login?next=%2Fkeys"
