"""The receipts at /receipts and each receipt's timeline at /receipts/<id>."""
from app.rendering import render
from app.user import bp


@bp.route("/receipts")
def receipts():
    return render("user/receipts.html")


@bp.route("/receipts/<receipt_id>")
def receipt_page(receipt_id: str):
    return render("user/receipts.html")
