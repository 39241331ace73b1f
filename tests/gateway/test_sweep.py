"""A request whose worker died leaves a hold; `waybill sweep` settles it and flags the receipt."""
from __future__ import annotations

from app.billing import holds
from app.billing.wallets import wallet_of
from app.extensions import db
from app.gateway.models import Receipt
from app.gateway.sweep import sweep_stale_holds
from tests.conftest import assert_ledger_green


def test_sweep_charges_a_dead_requests_hold_and_flags_its_receipt_for_review(make_user, run_cli):
    user = make_user("dead@example.com", credit_usd="1")
    wallet = wallet_of(user.id, "credit")
    dead_hold = holds.reserve(wallet.id, 40_000, memo="rcpt_dead gpt-4o-mini")
    db.session.add(Receipt(id="rcpt_dead", user_id=user.id, endpoint="chat", requested_model="gpt-4o-mini",
                           hold_id=dead_hold.id, flags=[]))
    db.session.commit()

    assert "swept: 1 stale hold(s) charged for review" in run_cli("sweep", "--older-than", "0").stdout
    db.session.rollback()
    dead = db.session.get(Receipt, "rcpt_dead")
    assert (dead.status, dead.charge, dead.flags) == ("interrupted", 40_000, ["review"])
    assert dead.ledger_entry_id is not None
    wallet = wallet_of(user.id, "credit")
    db.session.refresh(wallet)
    assert (wallet.balance, wallet.reserved) == (960_000, 0)
    assert "ledger check passed" in run_cli("ledger", "check").stdout
    assert_ledger_green()


def test_sweep_charges_a_dead_stream_what_it_had_delivered_at_its_last_heartbeat(make_user, clock):
    user = make_user("deadstream@example.com", credit_usd="1")
    wallet = wallet_of(user.id, "credit")
    hold = holds.reserve(wallet.id, 40_000, memo="rcpt_stream gpt-4o-mini", ttl_s=60, streaming=True)
    db.session.add(Receipt(id="rcpt_stream", user_id=user.id, endpoint="chat", requested_model="gpt-4o-mini",
                           stream=True, hold_id=hold.id, flags=[]))
    db.session.commit()
    holds.keep_alive(hold.id, delivered=1_234, ttl_s=60)
    clock.advance(61)
    assert sweep_stale_holds() == 1
    db.session.rollback()
    receipt = db.session.get(Receipt, "rcpt_stream")
    assert (receipt.charge, receipt.flags, receipt.status) == (1_234, ["review"], "interrupted")
    assert_ledger_green()


def test_ledger_check_catches_a_receipt_charge_without_its_ledger_entry(make_user, run_cli):
    user = make_user("tamper@example.com", credit_usd="1")
    db.session.add(Receipt(id="rcpt_free_lunch", user_id=user.id, endpoint="chat", requested_model="m",
                           charge=1234, status="succeeded", flags=[]))
    db.session.commit()
    result = run_cli("ledger", "check", check_rc=1)
    assert "receipt rcpt_free_lunch: charge 1234 but its ledger entry is missing" in result.stderr
