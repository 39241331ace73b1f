"""An email is at most 254 characters with no control characters, in the service, the sign-up form and the CLI."""
from __future__ import annotations

import pytest

from app.accounts.models import User
from app.accounts.service import create_user, find_user
from app.errors import ServiceError
from app.extensions import db
from tests.conftest import csrf_from

LONGEST = "a" * 64 + "@" + "b" * 185 + ".com"  # 254 characters
BAD_EMAILS = {
    "255 characters": "a" + LONGEST,
    "NUL": "nul\x00byte@example.com",
    "escape": "esc\x1b[31m@example.com",
    "newline inside": "new\nline@example.com",
    "DEL": "del\x7f@example.com",
    "C1 control": "c1\x85@example.com",
    "bidi override": "rlo\u202e@example.com",
    "zero-width space": "zw\u200b@example.com",
}


def user_count() -> int:
    db.session.rollback()
    return db.session.scalar(db.select(db.func.count(User.id)))


def test_the_longest_allowed_email_is_accepted(app):
    assert create_user(LONGEST, "password123").email == LONGEST


@pytest.mark.parametrize("email", BAD_EMAILS.values(), ids=BAD_EMAILS.keys())
def test_create_user_refuses_long_emails_and_control_characters(app, email):
    with pytest.raises(ServiceError) as refused:
        create_user(email, "password123")
    assert "\n" not in str(refused.value) and "\x00" not in str(refused.value)
    assert user_count() == 0


def test_looking_up_an_impossible_email_is_a_refusal_not_a_database_error(app):
    with pytest.raises(ServiceError, match="control characters"):
        find_user("nul\x00byte@example.com")


@pytest.mark.parametrize("email", [BAD_EMAILS["255 characters"], BAD_EMAILS["escape"], BAD_EMAILS["bidi override"]],
                         ids=["255 characters", "escape", "bidi override"])
def test_the_cli_refuses_them_in_one_line_with_exit_2_and_changes_nothing(app, run_cli, email):
    result = run_cli("users", "create", email, "--password", "password123", check_rc=2)
    assert len(result.stderr.strip().splitlines()) == 1 and "\x1b" not in result.stderr, result.stderr
    assert user_count() == 0


@pytest.mark.parametrize("email", [BAD_EMAILS["NUL"], BAD_EMAILS["bidi override"]], ids=["NUL", "bidi override"])
def test_the_signup_form_refuses_them(client, email):
    token = csrf_from(client.get("/signup").get_data(as_text=True))
    response = client.post("/signup", data={"email": email, "password": "password123", "csrf_token": token})
    assert response.status_code == 400 and "control characters" in response.get_data(as_text=True)
    assert user_count() == 0


def test_signing_in_with_a_nul_byte_is_a_wrong_password_not_a_server_error(client, make_user):
    make_user()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "user@example.com\x00", "password": "password123",
                                           "csrf_token": token})
    assert response.status_code == 400 and "Wrong email or password" in response.get_data(as_text=True)
