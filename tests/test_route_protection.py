"""Every page needs a sign-in and every /admin page an admin, checked rule by rule from app.url_map."""
from __future__ import annotations

import re
import uuid
from itertools import product
from urllib.parse import urlsplit

import pytest
from flask_login import login_required
from werkzeug.routing import AnyConverter

# The only pages a visitor may open; everything else in the map must send them to sign in.
PUBLIC = {"/login", "/signup", "/logout"}
# The API authenticates with bearer keys, never the session: its own tests cover it.
API_PATH = re.compile(r"^/v1(beta)?(/|$)")
DUMMY_VALUES = {"IntegerConverter": 1, "FloatConverter": 1.5, "UnicodeConverter": "x", "PathConverter": "x/y",
                "UUIDConverter": uuid.UUID(int=1)}


@pytest.fixture
def app_without_csrf(app):
    """The app with CSRF off, so every method reaches the login and admin checks rather than the token check."""
    app.config["WTF_CSRF_ENABLED"] = False
    return app


def placeholder_values(converter) -> list:
    """What to put in a placeholder: every choice of an any(), else one dummy of the converter's type."""
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)
    return [DUMMY_VALUES[type(converter).__name__]]  # a new converter type fails loudly here


def guarded_requests(app, under: str = "/") -> list[tuple[str, str]]:
    """(method, url) for every rule under a path that must need a sign-in: all but static files, the API and PUBLIC."""
    calls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule in PUBLIC:
            continue
        converters = rule._converters  # werkzeug keeps a rule's placeholders only here
        for values in product(*map(placeholder_values, converters.values())):
            url = rule.build(dict(zip(converters, values)))[1]
            if url.startswith(under) and not API_PATH.match(url):
                calls += [(method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return calls


def fresh_request(client, method: str, url: str, **kwargs):
    """One request in its own app context: the fixture's context would share `g`, and so Flask-Login's user."""
    with client.application.app_context():
        return client.open(url, method=method, **kwargs)


def answers(client, calls) -> dict[str, tuple[int, str]]:
    """'METHOD url' -> (status, redirect path) for each of these requests."""
    seen = {}
    for method, url in calls:
        response = fresh_request(client, method, url)
        seen[f"{method} {url}"] = (response.status_code, urlsplit(response.location or "").path)
    return seen


def signed_in(app, make_user, email: str, admin: bool = False):
    """A fresh client signed in as a new user."""
    make_user(email, admin=admin)
    client = app.test_client()
    assert fresh_request(client, "POST", "/login", data={"email": email, "password": "password123"}).status_code == 302
    return client


def left_open_to_visitors(app) -> list[str]:
    """Requests a visitor makes that are not sent to sign in."""
    seen = answers(app.test_client(), guarded_requests(app))
    return [call for call, (status, location) in seen.items() if status != 401 and (status, location) != (302, "/login")]


def admin_pages_open_to_users(app, make_user) -> list[str]:
    """Requests to /admin that a signed-in non-admin gets anything but 403 for."""
    seen = answers(signed_in(app, make_user, "plain@example.com"), guarded_requests(app, "/admin"))
    return [call for call, (status, _) in seen.items() if status != 403]


def test_every_page_sends_a_visitor_to_sign_in(app_without_csrf):
    called = {url for _, url in guarded_requests(app_without_csrf)}
    assert {"/", "/keys", "/admin/"} <= called  # the filter above cannot have emptied the list
    assert PUBLIC <= {rule.rule for rule in app_without_csrf.url_map.iter_rules()}, "a public page was removed"
    assert left_open_to_visitors(app_without_csrf) == []


def test_every_admin_page_is_403_for_users_and_open_to_admins(app_without_csrf, make_user):
    assert admin_pages_open_to_users(app_without_csrf, make_user) == []
    boss = signed_in(app_without_csrf, make_user, "boss@example.com", admin=True)
    seen = answers(boss, guarded_requests(app_without_csrf, "/admin"))
    assert seen and all(status != 403 for status, _ in seen.values()), seen


def test_the_checks_catch_a_route_left_open(app_without_csrf, make_user):
    app_without_csrf.add_url_rule("/open-door", "open_door", lambda: "hello")
    app_without_csrf.add_url_rule("/admin/side-door", "side_door", login_required(lambda: "hello"))
    assert left_open_to_visitors(app_without_csrf) == ["GET /open-door"]
    assert admin_pages_open_to_users(app_without_csrf, make_user) == ["GET /admin/side-door"]
