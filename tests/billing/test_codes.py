"""Redeem codes: stored hashed, redeemed once even under a race, refused without a trace, rate-limited per user."""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest

from app.billing.codes import (REDEEM_MAX_FAILURES, REDEEM_WINDOW, CodeRefused, RedeemThrottled, hash_code,
                               mint_codes, redeem_code)
from app.billing.models import LedgerEntry, RedeemCode
from app.billing.wallets import wallets_of
from app.errors import ServiceError
from app.extensions import db
from tests.conftest import assert_ledger_green, csrf_from

CODE = re.compile(r"WB(-[0-9A-HJKMNP-TV-Z]{4}){4}")
HTMX = {"HX-Request": "true"}


def state(user_id: int) -> tuple:
    """Everything a refused redeem must leave alone: balances, ledger and codes."""
    db.session.rollback()
    balances = {kind: w.balance for kind, w in wallets_of(user_id).items()}
    entries = db.session.scalar(db.select(db.func.count()).select_from(LedgerEntry))
    codes = db.session.execute(db.select(RedeemCode.id, RedeemCode.redeemed_at, RedeemCode.redeemed_by,
                                         RedeemCode.ledger_entry_id).order_by(RedeemCode.id)).all()
    return balances, entries, codes


def test_a_code_credits_its_wallet_once_and_the_memo_names_it_redacted(app, make_user):
    user = make_user()
    [code] = mint_codes("routed", 2_500_000)
    assert CODE.fullmatch(code)
    redeemed = redeem_code(user.id, code)
    assert (redeemed.wallet_kind, redeemed.amount) == ("routed", 2_500_000)
    assert {k: w.balance for k, w in wallets_of(user.id).items()} == {"credit": 0, "routed": 2_500_000}
    entry = db.session.get(LedgerEntry, redeemed.entry.id)
    assert entry.kind == "topup" and entry.memo == f"redeem code {code[:7]}…"
    assert code[8:] not in entry.memo  # the memo cannot be used to redeem it again
    row = db.session.scalar(db.select(RedeemCode))
    assert (row.redeemed_by, row.ledger_entry_id) == (user.id, entry.id) and row.redeemed_at is not None
    before = state(user.id)
    with pytest.raises(CodeRefused):
        redeem_code(user.id, code)
    assert state(user.id) == before
    assert_ledger_green()


def test_only_a_hash_is_stored_and_typing_slips_are_forgiven(app, make_user):
    user = make_user()
    [code] = mint_codes("credit", 1_000_000)
    stored = db.session.scalar(db.select(RedeemCode))
    assert stored.code_hash == hash_code(code) and len(stored.code_hash) == 64
    assert code not in (stored.code_hash, stored.prefix) and stored.prefix == code[:7]
    typed = f"  {code[3:].lower().replace('-', ' ').replace('0', 'o').replace('1', 'l')} "
    assert redeem_code(user.id, typed).amount == 1_000_000


@pytest.mark.parametrize("problem", ["unknown", "used", "expired"])
def test_unknown_used_and_expired_codes_get_one_message_and_change_nothing(app, make_user, clock, problem):
    user, other = make_user(), make_user("other@example.com")
    [code] = mint_codes("credit", 1_000_000, expires_at=clock.now() + timedelta(days=1))
    if problem == "unknown":
        code = code[:-1] + ("X" if code[-1] != "X" else "Y")
    elif problem == "used":
        redeem_code(other.id, code)
    else:
        clock.advance(86_400)
    before = state(user.id)
    with pytest.raises(CodeRefused) as refused:
        redeem_code(user.id, code)
    assert str(refused.value) == "That code is not valid: it may be mistyped, already used or expired."
    assert state(user.id) == before
    assert_ledger_green()


def test_minting_refuses_bad_requests(app):
    for args, kwargs in [(("gold", 1), {}), (("credit", 0), {}), (("credit", 1), {"count": 1001}),
                         (("credit", 1), {"count": 0})]:
        with pytest.raises(ServiceError):
            mint_codes(*args, **kwargs)
    assert db.session.scalar(db.select(db.func.count()).select_from(RedeemCode)) == 0


def test_one_code_redeemed_by_many_threads_at_once_credits_once(app, make_user):
    users = [make_user(f"racer{n}@example.com").id for n in range(8)]
    [code] = mint_codes("credit", 3_000_000)
    start, outcomes = threading.Barrier(len(users)), []

    def race(user_id):
        with app.app_context():
            start.wait()
            try:
                outcomes.append(redeem_code(user_id, code).entry.wallet_id)
            except CodeRefused:
                outcomes.append("refused")
            finally:
                db.session.remove()
    threads = [threading.Thread(target=race, args=(user_id,)) for user_id in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == len(users) and outcomes.count("refused") == len(users) - 1
    db.session.rollback()
    credited = [u for u in users if wallets_of(u)["credit"].balance]
    assert len(credited) == 1 and wallets_of(credited[0])["credit"].balance == 3_000_000
    assert db.session.scalar(db.select(db.func.count()).select_from(LedgerEntry)) == 1
    assert db.session.scalar(db.select(RedeemCode.redeemed_by)) == credited[0]
    assert_ledger_green()


def test_several_codes_redeemed_concurrently_by_one_user_all_count(app, make_user):
    user_id = make_user().id
    codes = mint_codes("routed", 1_250_000, count=6)
    start, outcomes = threading.Barrier(len(codes)), []

    def redeem(code):
        with app.app_context():
            start.wait()
            try:
                outcomes.append(redeem_code(user_id, code).amount)
            finally:
                db.session.remove()
    threads = [threading.Thread(target=redeem, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == [1_250_000] * 6
    db.session.rollback()
    assert wallets_of(user_id)["routed"].balance == 7_500_000
    assert_ledger_green()


def test_ten_failures_lock_redeeming_for_fifteen_minutes_and_successes_do_not_count(app, make_user, clock):
    user, neighbour = make_user(), make_user("neighbour@example.com")
    codes = mint_codes("credit", 1_000_000, count=3)
    redeem_code(user.id, codes[0])  # a success does not use up an attempt
    for n in range(REDEEM_MAX_FAILURES):
        with pytest.raises(CodeRefused):
            redeem_code(user.id, f"WB-0000-0000-0000-{n:04d}")
    before = state(user.id)
    with pytest.raises(RedeemThrottled) as throttled:
        redeem_code(user.id, codes[1])  # even a good code waits: the limit is checked first
    assert throttled.value.retry_after_s == REDEEM_WINDOW.total_seconds()
    assert "Try again in 15 minutes" in str(throttled.value)
    assert state(user.id) == before
    assert redeem_code(neighbour.id, codes[2]).amount == 1_000_000  # per user: the neighbour is not locked
    clock.advance(REDEEM_WINDOW.total_seconds())
    assert redeem_code(user.id, codes[1]).amount == 1_000_000
    assert_ledger_green()


def test_concurrent_guesses_cannot_slip_past_the_limit(app, make_user):
    user_id = make_user().id
    start, outcomes = threading.Barrier(16), []

    def guess(n):
        with app.app_context():
            start.wait()
            try:
                redeem_code(user_id, f"WB-0000-0000-0001-{n:04d}")
            except RedeemThrottled:
                outcomes.append("throttled")
            except CodeRefused:
                outcomes.append("refused")
            finally:
                db.session.remove()
    threads = [threading.Thread(target=guess, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused"] * REDEEM_MAX_FAILURES + ["throttled"] * (16 - REDEEM_MAX_FAILURES)
    assert_ledger_green()


def _redeem_form(client, code: str, wallet: str = "credit", headers=None):
    token = csrf_from(client.get(f"/wallets/{wallet}").get_data(as_text=True))
    return client.post(f"/wallets/redeem?wallet={wallet}", data={"code": code, "csrf_token": token},
                       headers=headers or {})


def test_redeeming_with_htmx_answers_the_form_the_flash_and_the_new_balances(app, login_as):
    client = login_as()
    [code] = mint_codes("credit", 4_200_000)
    response = _redeem_form(client, code, headers=HTMX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<article id="redeem"')
    assert 'id="wallet-balances" class="grid wallet-cards" hx-swap-oob="true"' in body
    assert '<strong><span class="money">$4.20</span></strong> available' in body
    assert 'id="flashes" aria-live="polite" hx-swap-oob="innerHTML"' in body
    assert "Code redeemed: $4.20 added to your official Credit." in body
    assert 'id="ledger"' in body and 'hx-swap-oob="true"' in body  # this wallet's ledger gains the entry
    refused = _redeem_form(client, code, headers=HTMX)
    assert refused.status_code == 400 and "That code is not valid" in refused.get_data(as_text=True)


def test_a_code_for_the_other_wallet_updates_both_balances_but_not_this_ledger(app, login_as):
    client = login_as()
    [code] = mint_codes("routed", 1_000_000)
    body = _redeem_form(client, code, wallet="credit", headers=HTMX).get_data(as_text=True)
    assert "added to your routed balance" in body and 'id="wallet-balances"' in body and 'id="ledger"' not in body


def test_a_plain_form_post_comes_back_to_the_wallet_page_with_the_new_entry(app, login_as):
    client = login_as()
    [code] = mint_codes("routed", 1_000_000)
    response = _redeem_form(client, code, wallet="credit")
    entry_id = db.session.scalar(db.select(RedeemCode.ledger_entry_id))
    assert response.status_code == 303 and response.location == f"/wallets/routed?entry={entry_id}"
    page = client.get(response.location).get_data(as_text=True)
    assert "Code redeemed: $1.00 added to your routed balance." in page
    assert re.search(rf'<tr id="entry-{entry_id}" class="highlight"', page)
    empty = _redeem_form(client, "", wallet="routed")
    assert empty.status_code == 303 and empty.location == "/wallets/routed"
    assert "Enter a code" in client.get("/wallets/routed").get_data(as_text=True)


def test_the_page_answers_429_with_retry_after_when_locked(app, login_as):
    client = login_as()
    for n in range(REDEEM_MAX_FAILURES):
        assert _redeem_form(client, f"WB-0000-0000-0000-{n:04d}", headers=HTMX).status_code == 400
    locked = _redeem_form(client, "WB-0000-0000-0000-9999", headers=HTMX)
    assert locked.status_code == 429 and locked.headers["Retry-After"] == "900"
    assert "Too many codes that did not work" in locked.get_data(as_text=True)
