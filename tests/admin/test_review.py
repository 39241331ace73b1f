"""/admin/review: flagged receipts confirmed or refunded (audited, ledger green), overdue holds swept."""
from __future__ import annotations

import pytest

from app.audit_trail.models import AuditEvent
from app.billing import holds
from app.billing.models import Hold, LedgerEntry
from app.billing.wallets import wallet_of
from app.extensions import db
from app.gateway.models import Receipt
from app.gateway.sweep import sweep_stale_holds
from tests.conftest import assert_ledger_green, csrf_from

HTMX = {"HX-Request": "true"}


@pytest.fixture
def admin(login_as):
    return login_as("admin@example.com", admin=True)


def dead_request(user_id: int, receipt_id: str, amount: int = 40_000, ttl_s: int | None = None) -> int:
    """A request whose worker died: its hold is still open and its receipt unfinished."""
    hold = holds.reserve(wallet_of(user_id, "credit").id, amount, memo=f"{receipt_id} gpt-4o-mini", ttl_s=ttl_s)
    db.session.add(Receipt(id=receipt_id, user_id=user_id, endpoint="chat", requested_model="gpt-4o-mini",
                           hold_id=hold.id, flags=[]))
    db.session.commit()
    return hold.id


@pytest.fixture
def flagged(make_user):
    """A receipt the sweep charged 40,000 µ$ and flagged `review`, for a user with $1 of credit."""
    user = make_user("dead@example.com", credit_usd="1")
    dead_request(user.id, "rcpt_dead")
    assert sweep_stale_holds(older_than_s=0) == 1
    return db.session.get(Receipt, "rcpt_dead")


def state(receipt_id: str) -> tuple:
    db.session.rollback()
    receipt = db.session.get(Receipt, receipt_id)
    return receipt.review_outcome, receipt.reviewed_at is not None


def audit_trail() -> list[tuple]:
    db.session.rollback()
    return [(e.action, e.subject, e.before, e.after) for e in db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id))]


def credit_balance(user_id: int) -> int:
    db.session.rollback()
    return wallet_of(user_id, "credit").balance


def test_an_empty_queue_says_nothing_to_review(admin):
    page = admin.get("/admin/review").get_data(as_text=True)
    assert "Nothing to review" in page and 'aria-current="page">Review' in page


def test_the_queue_lists_review_and_underpaid_receipts_not_yet_answered(admin, flagged, make_user):
    other = make_user("short@example.com")
    db.session.add_all([
        Receipt(id="rcpt_underpaid", user_id=other.id, endpoint="chat", requested_model="m", flags=["underpaid"]),
        Receipt(id="rcpt_fine", user_id=other.id, endpoint="chat", requested_model="m", flags=["model_mismatch"]),
        Receipt(id="rcpt_answered", user_id=other.id, endpoint="chat", requested_model="m", flags=["review"],
                reviewed_at=flagged.created_at, review_outcome="confirmed")])
    db.session.commit()

    page = admin.get("/admin/review").get_data(as_text=True)
    assert "rcpt_dead" in page and "dead@example.com" in page and "$0.04" in page
    assert "rcpt_underpaid" in page and "short@example.com" in page
    assert "rcpt_fine" not in page and "rcpt_answered" not in page
    assert "Flagged receipts <small>(2)</small>" in page and "No open hold is past its deadline." in page
    assert 'hx-confirm="Confirm rcpt_dead?' in page and 'hx-confirm="Refund this amount of rcpt_dead' in page


def test_confirming_answers_the_receipt_moves_no_money_and_is_audited(admin, flagged):
    page = admin.get("/admin/review").get_data(as_text=True)
    entries = db.session.scalar(db.select(db.func.count(LedgerEntry.id)))
    response = admin.post("/admin/receipts/rcpt_dead/confirm", headers=HTMX, data={"csrf_token": csrf_from(page)})

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="review"') and "Nothing to review" in body
    assert "Receipt rcpt_dead confirmed: its charge of $0.04 stands." in body
    assert state("rcpt_dead") == ("confirmed", True)
    assert credit_balance(flagged.user_id) == 960_000
    assert db.session.scalar(db.select(db.func.count(LedgerEntry.id))) == entries
    assert audit_trail()[-1] == ("receipt_confirmed", "rcpt_dead", {"flags": ["review"]},
                                 {"review_outcome": "confirmed", "charge": 40_000})

    again = admin.post("/admin/receipts/rcpt_dead/confirm", headers=HTMX, data={"csrf_token": csrf_from(page)})
    assert again.status_code == 409 and "has no flag waiting for review" in again.get_data(as_text=True)
    assert len(audit_trail()) == 1
    assert_ledger_green()


def test_a_refund_from_the_queue_posts_a_refund_entry_naming_the_admin(admin, flagged):
    page = admin.get("/admin/review").get_data(as_text=True)
    response = admin.post("/admin/receipts/rcpt_dead/refund", headers=HTMX, data={
        "csrf_token": csrf_from(page), "amount": "0.040000", "note": "worker crash, not the user's fault"})

    assert response.status_code == 200
    assert "Refunded $0.04 of receipt rcpt_dead" in response.get_data(as_text=True)
    assert state("rcpt_dead") == ("refunded", True)
    assert credit_balance(flagged.user_id) == 1_000_000
    refund = db.session.scalars(db.select(LedgerEntry).where(LedgerEntry.kind == "refund")).one()
    assert (refund.amount, refund.hold_id, refund.memo) == (
        40_000, flagged.hold_id, "refund of rcpt_dead by admin@example.com: worker crash, not the user's fault")
    assert audit_trail() == [("receipt_refunded", "rcpt_dead", {"refunded": 0},
                              {"refunded": 40_000, "amount": 40_000, "ledger_entry": refund.id, "charge": 40_000,
                               "note": "worker crash, not the user's fault"})]
    receipt = db.session.get(Receipt, "rcpt_dead")
    assert receipt.charge == 40_000 and receipt.ledger_entry_id != refund.id  # the charge stays as it was
    assert_ledger_green()


def test_partial_refunds_from_the_receipt_page_are_bounded_by_the_charge(admin, flagged):
    page = admin.get("/admin/receipts/rcpt_dead").get_data(as_text=True)
    assert "Refund up to $0.04" in page and "waiting in the review queue" in page
    token = csrf_from(page)

    def refund(amount: str):
        return admin.post("/admin/receipts/rcpt_dead/refund", data={"csrf_token": token, "amount": amount},
                          follow_redirects=True)

    assert "Refunded $0.01 of receipt rcpt_dead" in refund("0.01").get_data(as_text=True)
    too_much = refund("0.030001").get_data(as_text=True)
    assert "Not refunded: at most $0.030000 of this charge is left to refund." in too_much
    assert "Refund up to $0.03" in too_much
    refund("0.03")
    done = refund("0.000001").get_data(as_text=True)
    assert "this charge has already been refunded in full" in done
    assert "Refund up to" not in done and "refunded" in done
    assert credit_balance(flagged.user_id) == 1_000_000
    assert [after["refunded"] for action, _, _, after in audit_trail()] == [10_000, 40_000]
    assert_ledger_green()


@pytest.mark.parametrize("amount, message", [("0", "Enter an amount above $0"), ("", "Enter the amount to refund"),
                                             ("x", "not a USD amount")])
def test_a_bad_refund_amount_changes_nothing(admin, flagged, amount, message):
    page = admin.get("/admin/review").get_data(as_text=True)
    response = admin.post("/admin/receipts/rcpt_dead/refund", headers=HTMX,
                          data={"csrf_token": csrf_from(page), "amount": amount})
    assert response.status_code == 409 and message in response.get_data(as_text=True)
    assert state("rcpt_dead") == (None, False) and audit_trail() == []
    assert credit_balance(flagged.user_id) == 960_000


def test_a_receipt_that_charged_nothing_cannot_be_refunded(admin, make_user):
    user = make_user("free@example.com")
    db.session.add(Receipt(id="rcpt_free", user_id=user.id, endpoint="chat", requested_model="m", flags=["underpaid"]))
    db.session.commit()
    page = admin.get("/admin/receipts/rcpt_free").get_data(as_text=True)
    assert "Refund up to" not in page and "Confirm charge" in page
    response = admin.post("/admin/receipts/rcpt_free/refund", headers=HTMX,
                          data={"csrf_token": csrf_from(page), "amount": "1"})
    assert response.status_code == 409 and "charged nothing" in response.get_data(as_text=True)
    assert audit_trail() == []


def test_an_overdue_hold_is_swept_from_the_queue_and_its_receipt_flagged(admin, make_user, clock):
    user = make_user("stuck@example.com", credit_usd="1")
    hold_id = dead_request(user.id, "rcpt_stuck", ttl_s=60)
    page = admin.get("/admin/review").get_data(as_text=True)
    assert "Nothing to review" in page  # not overdue yet: its request may still be running
    refused = admin.post(f"/admin/review/holds/{hold_id}/sweep", headers=HTMX, data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 409 and "not past its deadline yet" in refused.get_data(as_text=True)

    clock.advance(61)
    page = admin.get("/admin/review").get_data(as_text=True)
    assert f'id="hold-{hold_id}"' in page and "stuck@example.com" in page and "rcpt_stuck" in page
    assert f'hx-confirm="Run the sweep for hold #{hold_id}?' in page
    response = admin.post(f"/admin/review/holds/{hold_id}/sweep", headers=HTMX, data={"csrf_token": csrf_from(page)})

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert f"Hold {hold_id} swept: settled, charged $0.04 and flagged for review." in body
    assert f'id="hold-{hold_id}"' not in body and 'id="review-rcpt_stuck"' in body  # now a flagged receipt
    db.session.rollback()
    assert db.session.get(Hold, hold_id).status == "settled"
    assert db.session.get(Receipt, "rcpt_stuck").flags == ["review"]
    assert audit_trail() == [("hold_swept", f"hold {hold_id}", {"status": "open", "reserved": 40_000},
                              {"status": "settled", "charged": 40_000, "review": True})]
    again = admin.post(f"/admin/review/holds/{hold_id}/sweep", headers=HTMX, data={"csrf_token": csrf_from(page)})
    assert again.status_code == 409 and "has already ended (settled)" in again.get_data(as_text=True)
    assert_ledger_green()
