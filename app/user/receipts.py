"""The receipts at /receipts and each receipt's timeline at /receipts/<id>."""
from __future__ import annotations

from flask import abort, request
from flask_login import current_user

from app.gateway.receipts import (ReceiptFilters, duration_text, find_receipt, list_receipts, receipt_detail,
                                  receipt_models)
from app.rendering import render
from app.user import bp


@bp.route("/receipts")
def receipts():
    filters = ReceiptFilters.parse(request.args)
    listing = list_receipts(current_user.id, filters, request.args.get("page", 1, type=int))
    return render("user/receipts.html", "user/_receipts.html", filters=filters, listing=listing,
                  models=receipt_models(current_user.id), duration=duration_text)


@bp.route("/receipts/<receipt_id>")
def receipt_page(receipt_id: str):
    receipt = find_receipt(current_user.id, receipt_id[:40])
    if receipt is None:
        abort(404)
    return render("user/receipt.html", detail=receipt_detail(receipt), duration=duration_text)
