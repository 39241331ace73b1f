"""Sign-in throttling per account and per address, in the database, and sign-in timing that names no account."""
from __future__ import annotations

import threading

import pytest

from app.accounts import service
from app.accounts.models import LoginThrottle
from app.auth.throttle import LoginThrottled, sign_in
from app.extensions import db
from tests.conftest import csrf_from

WINDOW_S = 900


def attempt(client, email="user@example.com", password="wrong-password", address="127.0.0.1"):
    """One sign-in through the real form from an address; the response."""
    with client.application.app_context():  # a fresh `g` per request, as a new request in production has
        environ = {"REMOTE_ADDR": address}
        token = csrf_from(client.get("/login", environ_base=environ).get_data(as_text=True))
        return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                           environ_base=environ)


def test_the_defaults_are_five_per_account_and_twenty_per_address_in_fifteen_minutes(app):
    assert (app.config["WAYBILL_LOGIN_MAX_FAILURES_PER_ACCOUNT"], app.config["WAYBILL_LOGIN_MAX_FAILURES_PER_ADDRESS"],
            app.config["WAYBILL_LOGIN_WINDOW_S"]) == (5, 20, WINDOW_S)


def test_an_account_locks_after_five_failures_even_for_the_right_password_until_the_window_passes(
        app, make_user, clock):
    make_user()
    for _ in range(5):
        assert attempt(app.test_client()).status_code == 400
    locked = attempt(app.test_client(), password="password123", address="203.0.113.9")  # even from elsewhere
    assert locked.status_code == 429 and locked.headers["Retry-After"] == str(WINDOW_S)
    assert "Too many failed sign-ins" in locked.get_data(as_text=True) and "15 minutes" in locked.get_data(as_text=True)
    clock.advance(WINDOW_S - 60)
    assert attempt(app.test_client(), password="password123").status_code == 429
    clock.advance(60)
    assert attempt(app.test_client(), password="password123").status_code == 302


def test_an_address_locks_after_twenty_failures_across_accounts(app, make_user):
    make_user()
    for n in range(20):
        assert attempt(app.test_client(), email=f"guess{n}@example.com").status_code == 400
    assert attempt(app.test_client(), password="password123").status_code == 429
    assert attempt(app.test_client(), password="password123", address="198.51.100.7").status_code == 302


def test_an_ipv6_host_cannot_escape_by_hopping_addresses_in_its_64(app, make_user):
    make_user()
    for n in range(20):
        hop = f"2001:db8::{n + 1:x}"
        assert attempt(app.test_client(), email=f"guess{n}@example.com", address=hop).status_code == 400
    assert attempt(app.test_client(), password="password123", address="2001:db8::ffff").status_code == 429


def test_unknown_emails_are_throttled_the_same_way(app):
    for _ in range(5):
        assert attempt(app.test_client(), email="nobody@example.com").status_code == 400
    assert attempt(app.test_client(), email="nobody@example.com").status_code == 429


def test_a_success_clears_the_accounts_count_but_gives_back_only_its_own_attempt_to_the_address(app, make_user):
    make_user()
    make_user("mine@example.com")
    for _ in range(4):
        attempt(app.test_client())
    assert attempt(app.test_client(), password="password123").status_code == 302
    for _ in range(4):
        assert attempt(app.test_client()).status_code == 400  # the account starts again from zero
    counts = dict(db.session.execute(db.select(LoginThrottle.scope, LoginThrottle.failures)).all())
    assert counts == {"account": 4, "address": 8}
    # Someone signing in to an account of their own between guesses does not reset the address.
    for n in range(12):
        assert attempt(app.test_client(), email="mine@example.com", password="password123").status_code == 302
        attempt(app.test_client(), email=f"other{n}@example.com")
    assert attempt(app.test_client(), email="mine@example.com", password="password123").status_code == 429


def test_concurrent_guesses_cannot_all_slip_under_the_limit(app, make_user, monkeypatch):
    make_user()
    checked, start = [], threading.Barrier(12)
    real_check = service.check_password_hash
    monkeypatch.setattr(service, "check_password_hash", lambda *args: checked.append(1) or real_check(*args))
    outcomes = []

    def guess():
        with app.app_context():
            start.wait()
            try:
                outcomes.append(sign_in("user@example.com", "wrong-password", "192.0.2.1"))
            except LoginThrottled:
                outcomes.append("throttled")
            finally:
                db.session.remove()
    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 12 and len(checked) == 5 and outcomes.count("throttled") == 7


def test_the_table_keeps_digests_not_emails_or_addresses(app):
    attempt(app.test_client(), email="secret.person@example.com", address="192.0.2.44")
    subjects = db.session.scalars(db.select(LoginThrottle.subject)).all()
    assert len(subjects) == 2 and all(len(s) == 64 and "@" not in s and "192" not in s for s in subjects)


@pytest.mark.parametrize("email", ["nobody@example.com", "disabled@example.com", "bad\x00byte@example.com"])
def test_every_failed_sign_in_checks_a_password_hash_so_its_time_names_no_account(app, make_user, monkeypatch, email):
    disabled = make_user("disabled@example.com")
    disabled.disabled = True
    db.session.commit()
    real_method = disabled.password_hash.split("$")[0]  # e.g. scrypt:32768:8:1: the same cost as a real check
    checked = []
    real_check = service.check_password_hash
    monkeypatch.setattr(service, "check_password_hash", lambda *args: checked.append(args[0]) or real_check(*args))
    assert attempt(app.test_client(), email=email, password="password123").status_code == 400
    assert len(checked) == 1 and checked[0].split("$")[0] == real_method
