"""/admin/review and /admin/receipts: flagged receipts to confirm or refund, overdue holds to sweep, any receipt by id."""
from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_login import current_user
from htmx_flask import request

from app.admin import bp
from app.admin.user_forms import ActionForm, RefundForm
from app.errors import ServiceError
from app.gateway.review import (confirm_receipt, emails_of, overdue_holds, receipt_for_admin, refund_receipt,
                                review_queue, sweep_overdue_hold)
from app.rendering import render, usd


@bp.route("/review")
def review():
    return _review_page()


def _review_page(status: int = 200):
    """The queue of flagged receipts and the overdue holds, or their panel for htmx."""
    queue = review_queue(request.args.get("page", 1, type=int))
    return render("admin/review.html", "admin/_review.html", status=status, queue=queue,
                  emails=emails_of(receipt.user_id for receipt in queue.items), holds=overdue_holds(),
                  action=ActionForm(formdata=None))


def _answer(receipt_id: str | None, ok: bool):
    """After an action: the queue's panel for the queue's htmx forms, else back to the receipt's page (or the queue)."""
    if request.htmx and not request.htmx.boosted:
        return _review_page(200 if ok else 409)
    target = url_for("admin.receipt", receipt_id=receipt_id) if receipt_id else url_for("admin.review")
    return redirect(target, 303)


@bp.route("/receipts/<receipt_id>/confirm", methods=["POST"])
def receipt_confirm(receipt_id: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        receipt = confirm_receipt(current_user.id, receipt_id)
    except ServiceError as refused:
        flash(str(refused), "error")
        return _answer(receipt_id, ok=False)
    flash(f"Receipt {receipt.id} confirmed: its charge of {usd(receipt.charge)} stands.", "success")
    return _answer(receipt_id, ok=True)


@bp.route("/receipts/<receipt_id>/refund", methods=["POST"])
def receipt_refund(receipt_id: str):
    form = RefundForm()
    if not form.validate_on_submit():
        flash(" ".join(error for errors in form.errors.values() for error in errors), "error")
        return _answer(receipt_id, ok=False)
    try:
        entry = refund_receipt(current_user, receipt_id, form.amount.data, form.note.data or "")
    except ServiceError as refused:
        flash(f"Not refunded: {refused}.", "error")
        return _answer(receipt_id, ok=False)
    flash(f"Refunded {usd(entry.amount)} of receipt {receipt_id} (ledger entry #{entry.id}).", "success")
    return _answer(receipt_id, ok=True)


@bp.route("/review/holds/<int:hold_id>/sweep", methods=["POST"])
def hold_sweep(hold_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        outcome = sweep_overdue_hold(current_user.id, hold_id)
    except ServiceError as refused:
        flash(str(refused), "error")
        return _answer(None, ok=False)
    flash(f"Hold {hold_id} swept: {outcome.hold.status}, charged {usd(outcome.hold.charged or 0)} and flagged for review"
          + (f"; {outcome.others} other overdue hold(s) too." if outcome.others else "."), "success")
    return _answer(None, ok=True)


@bp.route("/receipts")
def find_receipt():
    receipt_id = request.args.get("id", "").strip()
    return redirect(url_for("admin.receipt", receipt_id=receipt_id) if receipt_id else url_for("admin.users"))


@bp.route("/receipts/<receipt_id>")
def receipt(receipt_id: str):
    found = receipt_for_admin(receipt_id)
    if found is None:
        abort(404)
    return render("admin/receipt.html", found=found, refund=RefundForm.up_to(found.refundable),
                  action=ActionForm(formdata=None))
