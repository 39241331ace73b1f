"""The review queue: flagged receipts an admin confirms or refunds, and open holds past their deadline."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import String, cast, or_, update

from app.accounts.models import User
from app.audit_trail.service import record_change
from app.billing import holds, refunds
from app.billing.models import Hold, HoldStatus, LedgerEntry, Wallet
from app.billing.wallets import PostedEntry
from app.database import utcnow, write_transaction
from app.errors import ServiceError
from app.extensions import db
from app.gateway import sweep
from app.gateway.models import Receipt
from app.gateway.receipts import receipt_json

# The receipt flags a person must look at: settled by sweep, or charged less than the usage cost.
FLAGS_TO_REVIEW = ("review", "underpaid")
QUEUE_PAGE_SIZE = 25
OVERDUE_SHOWN = 100


class ReviewOutcome(str, enum.Enum):
    """An admin's answer to a flagged receipt."""

    CONFIRMED = "confirmed"
    REFUNDED = "refunded"


def _flagged():
    """Receipts carrying a flag to review; flags is a JSON list, matched as text the same way on both databases."""
    flags = cast(Receipt.flags, String)
    return or_(*(flags.like(f'%"{flag}"%') for flag in FLAGS_TO_REVIEW))


def review_queue(page: int = 1, per_page: int = QUEUE_PAGE_SIZE) -> Pagination:
    """Flagged receipts no admin has answered yet, oldest first."""
    query = (db.select(Receipt).where(Receipt.reviewed_at.is_(None), _flagged())
             .order_by(Receipt.created_at, Receipt.id))
    return db.paginate(query, page=max(page, 1), per_page=per_page, error_out=False)


def emails_of(user_ids) -> dict[int, str]:
    """Users' emails by id, in one query."""
    ids = set(user_ids)
    if not ids:
        return {}
    return dict(db.session.execute(db.select(User.id, User.email).where(User.id.in_(ids))).all())


@dataclass(frozen=True)
class OverdueHold:
    """An open hold past its deadline: its request's worker probably died."""

    id: int
    amount: int
    delivered: int | None
    created_at: datetime
    deadline: datetime
    wallet: str
    email: str
    receipt_id: str | None


def overdue_holds(now: datetime | None = None, limit: int = OVERDUE_SHOWN) -> list[OverdueHold]:
    """Open holds past their deadline, oldest first, with their wallet, owner and receipt."""
    rows = db.session.execute(
        db.select(Hold.id, Hold.amount, Hold.delivered, Hold.created_at, Hold.deadline, Wallet.kind, User.email,
                  Receipt.id)
        .join(Wallet, Wallet.id == Hold.wallet_id).join(User, User.id == Wallet.user_id)
        .outerjoin(Receipt, Receipt.hold_id == Hold.id)
        .where(Hold.status == HoldStatus.OPEN.value, Hold.deadline <= (now or utcnow()))
        .order_by(Hold.deadline, Hold.id).limit(limit)).all()
    return [OverdueHold(*row) for row in rows]


def needs_review(receipt: Receipt) -> bool:
    """Whether a receipt is flagged and still waits for an admin's answer."""
    return receipt.reviewed_at is None and any(flag in FLAGS_TO_REVIEW for flag in receipt.flags or [])


@dataclass(frozen=True)
class ReceiptForAdmin:
    """Everything an admin sees of a receipt: the contract's facts, whose it is, and its refunds."""

    receipt: Receipt
    facts: dict
    email: str
    charge_entry: LedgerEntry | None
    refunds: list[LedgerEntry]
    refundable: int
    needs_review: bool


def receipt_for_admin(receipt_id: str) -> ReceiptForAdmin | None:
    """Any user's receipt with its owner and refunds; None when no receipt has this id."""
    receipt = db.session.get(Receipt, receipt_id[:40])
    if receipt is None:
        return None
    given_back = refunds.refund_entries(receipt.hold_id) if receipt.hold_id is not None else []
    charge_entry = db.session.get(LedgerEntry, receipt.ledger_entry_id) if receipt.ledger_entry_id else None
    return ReceiptForAdmin(receipt, receipt_json(receipt), emails_of([receipt.user_id])[receipt.user_id], charge_entry,
                           given_back, max(receipt.charge - sum(e.amount for e in given_back), 0),
                           needs_review(receipt))


def _locked_receipt(receipt_id: str) -> Receipt:
    """The receipt, read fresh and locked for this write transaction; ServiceError when unknown."""
    receipt = db.session.scalar(db.select(Receipt).where(Receipt.id == receipt_id[:40])
                                .with_for_update().execution_options(populate_existing=True))
    if receipt is None:
        raise ServiceError(f"no receipt {receipt_id!r}")
    return receipt


def confirm_receipt(actor_id: int, receipt_id: str) -> Receipt:
    """Answer a flagged receipt as right as it stands: it leaves the queue and no money moves."""
    with write_transaction():
        receipt = _locked_receipt(receipt_id)
        if not needs_review(receipt):
            raise ServiceError(f"receipt {receipt.id} has no flag waiting for review")
        receipt.reviewed_at, receipt.review_outcome = utcnow(), ReviewOutcome.CONFIRMED.value
        record_change(actor_id, "receipt_confirmed", receipt.id, before={"flags": receipt.flags},
                      after={"review_outcome": receipt.review_outcome, "charge": receipt.charge})
    return receipt


def refund_receipt(actor: User, receipt_id: str, amount: int, note: str = "") -> PostedEntry:
    """Refund part or all of a receipt's charge with a refund entry on the wallet it was paid from."""
    with write_transaction():
        receipt = _locked_receipt(receipt_id)
        if receipt.hold_id is None or not receipt.charge:
            raise refunds.RefundRefused(f"receipt {receipt.id} charged nothing, so there is nothing to refund")
        memo = f"refund of {receipt.id} by {actor.email}" + (f": {note}" if note else "")
        entry = refunds.refund(receipt.hold_id, amount, memo)
        refunded = refunds.refunded_amount(receipt.hold_id)
        db.session.execute(update(Receipt).where(Receipt.id == receipt.id)
                           .values(reviewed_at=receipt.reviewed_at or utcnow(),
                                   review_outcome=ReviewOutcome.REFUNDED.value)
                           .execution_options(synchronize_session=False))
        record_change(actor.id, "receipt_refunded", receipt.id, before={"refunded": refunded - amount},
                      after={"refunded": refunded, "amount": amount, "ledger_entry": entry.id,
                             "charge": receipt.charge, "note": note or None})
    return entry


@dataclass(frozen=True)
class SweepOutcome:
    """What sweeping for one overdue hold did: that hold as it ended, and how many other overdue holds it resolved."""

    hold: Hold
    others: int


def sweep_overdue_hold(actor_id: int, hold_id: int) -> SweepOutcome:
    """Run the sweep `waybill sweep` runs for a hold an admin picked; each hold it resolves is audited.

    The sweep resolves every overdue hold, not just this one: each is as dead as the one picked.
    """
    hold = db.session.get(Hold, hold_id)
    if hold is None:
        raise ServiceError(f"no hold {hold_id}")
    if hold.status != HoldStatus.OPEN.value:
        raise ServiceError(f"hold {hold_id} has already ended ({hold.status})")
    if hold.deadline > utcnow():
        raise ServiceError(f"hold {hold_id} is not past its deadline yet: its request may still be running")
    swept: list[int] = []

    def audit(settlement: holds.Settlement) -> None:
        record_change(actor_id, "hold_swept", f"hold {settlement.hold_id}",
                      before={"status": HoldStatus.OPEN.value, "reserved": settlement.held},
                      after={"status": HoldStatus.SETTLED.value, "charged": settlement.charged, "review": True})
        swept.append(settlement.hold_id)

    sweep.sweep_stale_holds(and_then=audit)  # exactly what `waybill sweep` does, each hold audited
    db.session.refresh(hold)
    return SweepOutcome(hold, len([other for other in swept if other != hold_id]))
