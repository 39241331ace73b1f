"""The dashboard at /: both wallets at a glance."""
from __future__ import annotations

from flask_login import current_user

from app.billing.ledger import recent_entries
from app.billing.wallets import wallets_of
from app.rendering import render
from app.user import bp


@bp.route("/")
def dashboard():
    wallets = wallets_of(current_user.id)
    names = {w.id: w.kind for w in wallets.values()}
    return render("user/dashboard.html", wallets=wallets, wallet_names=names,
                  entries=recent_entries(list(names), 10))
