"""The wallet pages at /wallets/<kind>: balance and ledger."""
from __future__ import annotations

from flask import abort
from flask_login import current_user

from app.billing.ledger import recent_entries
from app.billing.models import WalletKind
from app.billing.wallets import wallets_of
from app.rendering import render
from app.user import bp


@bp.route("/wallets/<kind>")
def wallet(kind: str):
    if kind not in {k.value for k in WalletKind}:
        abort(404)
    wallet = wallets_of(current_user.id)[kind]
    return render("user/wallet.html", wallet=wallet, entries=recent_entries([wallet.id], 200))
