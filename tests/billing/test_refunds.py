"""Refunds: a refund entry against a settled charge, never more than charged less earlier refunds, even racing."""
from __future__ import annotations

import threading

import pytest

from app.billing import holds
from app.billing.models import LedgerEntry, Wallet
from app.billing.refunds import RefundRefused, refund, refund_entries, refunded_amount
from app.billing.wallets import InvalidAmount, wallet_of
from app.extensions import db
from tests.conftest import assert_ledger_green


@pytest.fixture
def charged(make_user):
    """A settled hold that charged 40,000 µ$ of a $1 credit wallet."""
    user = make_user("refunds@example.com", credit_usd="1")
    wallet = wallet_of(user.id, "credit")
    hold = holds.reserve(wallet.id, 50_000)
    holds.settle(hold.id, 40_000, memo="a request")
    return hold.id, wallet.id


def balance(wallet_id: int) -> int:
    db.session.rollback()
    return db.session.get(Wallet, wallet_id).balance


def test_a_refund_posts_a_refund_entry_and_restores_the_balance(charged):
    hold_id, wallet_id = charged
    entry = refund(hold_id, 15_000, memo="refund of rcpt_x")
    assert (entry.amount, entry.balance_after) == (15_000, 975_000)
    stored = db.session.get(LedgerEntry, entry.id)
    assert (stored.kind, stored.hold_id, stored.memo) == ("refund", hold_id, "refund of rcpt_x")
    assert refunded_amount(hold_id) == 15_000 and [e.id for e in refund_entries(hold_id)] == [entry.id]
    assert balance(wallet_id) == 975_000
    assert_ledger_green()


def test_partial_refunds_never_add_up_to_more_than_the_charge(charged):
    hold_id, wallet_id = charged
    refund(hold_id, 30_000)
    with pytest.raises(RefundRefused, match=r"at most \$0.010000 of this charge is left"):
        refund(hold_id, 10_001)
    refund(hold_id, 10_000)
    with pytest.raises(RefundRefused, match="already been refunded in full"):
        refund(hold_id, 1)
    assert refunded_amount(hold_id) == 40_000 and balance(wallet_id) == 1_000_000
    assert_ledger_green()


@pytest.mark.parametrize("amount", [0, -1, True, 1.5])
def test_a_refund_must_be_a_positive_integer(charged, amount):
    with pytest.raises(InvalidAmount):
        refund(charged[0], amount)
    assert refunded_amount(charged[0]) == 0


def test_only_a_settled_charge_can_be_refunded(make_user):
    wallet = wallet_of(make_user("open@example.com", credit_usd="1").id, "credit")
    open_hold = holds.reserve(wallet.id, 10_000)
    voided = holds.reserve(wallet.id, 10_000)
    holds.void(voided.id)
    for hold_id in (open_hold.id, voided.id, 999_999):
        with pytest.raises(RefundRefused, match="nothing was charged"):
            refund(hold_id, 1)
    assert_ledger_green()


def test_racing_refunds_never_refund_more_than_the_charge(app, charged):
    hold_id, wallet_id = charged
    racers, each = 8, 10_000  # eight refunds of $0.01 against a $0.04 charge: exactly four fit
    start = threading.Barrier(racers)
    outcomes: list[str] = []

    def race():
        with app.app_context():
            start.wait()
            try:
                refund(hold_id, each, memo="racing")
                outcomes.append("refunded")
            except RefundRefused:
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refunded"] * 4 + ["refused"] * 4
    db.session.rollback()  # a fresh snapshot: the racers committed in their own sessions
    assert refunded_amount(hold_id) == 40_000 and balance(wallet_id) == 1_000_000
    assert_ledger_green()


def test_ledger_check_catches_a_refund_beyond_the_charge_written_around_the_service(charged):
    from app.billing.audit import ledger_violations
    from app.billing.models import EntryKind
    from app.billing.wallets import post_entry
    from app.database import write_transaction
    hold_id, wallet_id = charged
    refund(hold_id, 40_000)
    assert ledger_violations() == []
    # A bug that skipped the bound: one more refunded micro-dollar, with the wallet kept consistent.
    with write_transaction():
        wallet = db.session.get(Wallet, wallet_id)
        wallet.balance += 1
        post_entry(wallet_id, EntryKind.REFUND, 1, wallet.balance, "over-refund", hold_id=hold_id)
    assert any("refunds 40001 exceed its charge 40000" in line for line in ledger_violations())


def test_ledger_check_catches_a_refund_with_no_settled_hold(make_user):
    from app.billing.audit import ledger_violations
    from app.billing.models import EntryKind
    from app.billing.wallets import post_entry
    from app.database import write_transaction
    user = make_user("stray@example.com", credit_usd="1")
    wallet = wallet_of(user.id, "credit")
    with write_transaction():
        stored = db.session.get(Wallet, wallet.id)
        stored.balance += 5
        post_entry(wallet.id, EntryKind.REFUND, 5, stored.balance, "refund of nothing")
    assert any("belong to no settled hold" in line for line in ledger_violations())
