"""Reserve, settle, void and sweep against a real database, with the ledger invariants after each."""
from __future__ import annotations


import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy.exc import IntegrityError

from app.billing import holds
from app.billing.audit import ledger_violations
from app.billing.models import Hold, LedgerEntry, Wallet
from app.accounts.models import User
from app.billing.wallets import InvalidAmount, credit, open_wallets, wallet_of
from app.extensions import db


@pytest.fixture
def wallet(make_user):
    user = make_user(credit_usd="1.00")
    return wallet_of(user.id, "credit")


def _fresh(wallet_id: int) -> Wallet:
    return db.session.get(Wallet, wallet_id, populate_existing=True)


def test_reserve_then_settle_charges_once_and_releases_the_rest(wallet):
    hold = holds.reserve(wallet.id, 300_000)
    assert _fresh(wallet.id).reserved == 300_000
    result = holds.settle(hold.id, 120_000)
    w = _fresh(wallet.id)
    assert (w.balance, w.reserved, result.charged, result.underpaid) == (880_000, 0, 120_000, False)
    assert result.entry.amount == -120_000 and result.entry.balance_after == 880_000
    with pytest.raises(holds.HoldClosed):
        holds.settle(hold.id, 1)
    with pytest.raises(holds.HoldClosed):
        holds.void(hold.id)
    assert ledger_violations() == []


def test_reserve_refuses_what_the_wallet_cannot_cover(wallet):
    holds.reserve(wallet.id, 900_000)
    with pytest.raises(holds.InsufficientBalance):
        holds.reserve(wallet.id, 100_001)
    assert _fresh(wallet.id).reserved == 900_000
    assert ledger_violations() == []


def test_excess_over_the_hold_is_taken_from_the_available_balance(wallet):
    hold = holds.reserve(wallet.id, 100_000)
    result = holds.settle(hold.id, 250_000)
    assert (result.charged, result.underpaid) == (250_000, False)
    assert _fresh(wallet.id).balance == 750_000
    assert ledger_violations() == []


def test_charge_beyond_the_wallet_is_capped_and_flagged_underpaid(wallet):
    other = holds.reserve(wallet.id, 400_000)
    hold = holds.reserve(wallet.id, 100_000)
    result = holds.settle(hold.id, 5_000_000)
    # It may take its own hold plus what no other hold reserved: 100k + 500k.
    assert (result.charged, result.underpaid) == (600_000, True)
    w = _fresh(wallet.id)
    assert (w.balance, w.reserved) == (400_000, 400_000)
    assert db.session.get(Hold, hold.id).underpaid
    holds.settle(other.id, 400_000)
    assert _fresh(wallet.id).balance == 0
    assert ledger_violations() == []


def test_void_releases_without_a_ledger_entry(wallet):
    hold = holds.reserve(wallet.id, 500_000)
    holds.void(hold.id)
    w = _fresh(wallet.id)
    assert (w.balance, w.reserved) == (1_000_000, 0)
    assert db.session.scalar(db.select(db.func.count(LedgerEntry.id)).where(LedgerEntry.hold_id == hold.id)) == 0
    assert ledger_violations() == []


def test_zero_charge_writes_no_charge_entry(wallet):
    hold = holds.reserve(wallet.id, 500_000)
    assert holds.settle(hold.id, 0).entry is None
    assert ledger_violations() == []


def test_sweep_charges_holds_past_their_deadline_for_review_and_spares_live_ones(wallet, clock):
    stale = holds.reserve(wallet.id, 200_000, ttl_s=60)
    fresh = holds.reserve(wallet.id, 300_000, ttl_s=3600)
    kept_alive = holds.reserve(wallet.id, 100_000, ttl_s=60, streaming=True)
    clock.advance(59)
    assert holds.sweep() == 0
    holds.keep_alive(kept_alive.id, delivered=50_000, ttl_s=60)  # a live stream's heartbeat
    clock.advance(2)
    assert holds.sweep() == 1
    swept = db.session.get(Hold, stale.id, populate_existing=True)
    assert (swept.status, swept.charged, swept.needs_review) == ("settled", 200_000, True)
    assert db.session.get(Hold, kept_alive.id, populate_existing=True).status == "open"
    assert db.session.get(Hold, fresh.id, populate_existing=True).status == "open"
    assert holds.sweep(older_than_s=0) == 2  # the stream is charged what it had delivered, not its hold
    assert _fresh(wallet.id).balance == 1_000_000 - 200_000 - 300_000 - 50_000
    assert ledger_violations() == []


def test_topup_refuses_zero_and_negative(wallet):
    for amount in (0, -5):
        with pytest.raises(InvalidAmount):
            credit(wallet.id, amount)
    assert _fresh(wallet.id).balance == 1_000_000


def test_check_constraints_back_up_the_guarded_statements(wallet):
    for values in ({"reserved": 2_000_000}, {"balance": -1, "reserved": 0}, {"reserved": -1}):
        with pytest.raises(IntegrityError):
            db.session.execute(db.update(Wallet).where(Wallet.id == wallet.id).values(**values))
            db.session.commit()
        db.session.rollback()
    assert _fresh(wallet.id).balance == 1_000_000


def test_hold_state_machine(app):
    """Random sequences of topup, reserve, settle, void and sweep keep every invariant."""
    runs = iter(range(10_000))
    kinds = st.sampled_from(["credit", "routed"])

    class HoldMachine(RuleBasedStateMachine):
        @initialize()
        def start(self):
            # A user of its own per run, so no run depends on what an earlier one left behind.
            user = User(email=f"machine{next(runs)}@example.com", password_hash="-")
            db.session.add(user)
            db.session.flush()
            wallets = open_wallets(user.id)
            db.session.commit()
            self.wallet = {w.kind: w.id for w in wallets}
            self.balance = {w: 0 for w in self.wallet.values()}
            self.open: dict[int, tuple[int, int]] = {}

        def available(self, wallet_id):
            return self.balance[wallet_id] - sum(a for w, a in self.open.values() if w == wallet_id)

        @rule(kind=kinds, amount=st.integers(1, 2_000_000))
        def topup(self, kind, amount):
            w = self.wallet[kind]
            credit(w, amount)
            self.balance[w] += amount

        @rule(kind=kinds, amount=st.integers(0, 1_500_000))
        def reserve(self, kind, amount):
            w = self.wallet[kind]
            if amount <= self.available(w):
                hold = holds.reserve(w, amount)
                self.open[hold.id] = (w, amount)
            else:
                with pytest.raises(holds.InsufficientBalance):
                    holds.reserve(w, amount)

        @precondition(lambda self: self.open)
        @rule(data=st.data(), charge=st.integers(0, 3_000_000))
        def settle(self, data, charge):
            hold_id = data.draw(st.sampled_from(sorted(self.open)))
            w, amount = self.open[hold_id]
            payable = min(charge, amount + self.available(w))
            self.open.pop(hold_id)
            result = holds.settle(hold_id, charge)
            assert (result.charged, result.underpaid) == (payable, payable < charge)
            self.balance[w] -= payable

        @precondition(lambda self: self.open)
        @rule(data=st.data())
        def void(self, data):
            hold_id = data.draw(st.sampled_from(sorted(self.open)))
            self.open.pop(hold_id)
            holds.void(hold_id)

        @rule()
        def sweep(self):
            holds.sweep(older_than_s=0)
            for hold_id, (w, amount) in list(self.open.items()):
                self.open.pop(hold_id)
                self.balance[w] -= amount

        @invariant()
        def ledger_holds(self):
            assert ledger_violations() == []
            for w in self.wallet.values():
                wallet = _fresh(w)
                assert wallet.balance == self.balance[w]
                assert wallet.reserved == sum(a for ow, a in self.open.values() if ow == w)

    run_state_machine_as_test(HoldMachine, settings=settings(
        max_examples=25, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))


def test_a_wallet_balance_is_bounded_so_top_ups_cannot_overflow_it(wallet):
    from app.billing.wallets import MAX_BALANCE_MICROS
    with pytest.raises(InvalidAmount):
        credit(wallet.id, MAX_BALANCE_MICROS)
    assert _fresh(wallet.id).balance == 1_000_000
    assert ledger_violations() == []
