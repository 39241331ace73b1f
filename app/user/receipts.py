"""The receipts at /receipts and each receipt's timeline at /receipts/<id>."""
from app.rendering import render
from app.user import bp


@bp.route("/receipts")
def receipts():
    return render("user/receipts.html")
