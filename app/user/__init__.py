"""The signed-in user's pages, one blueprint split by page: dashboard, wallets, keys, models, receipts."""
from flask import Blueprint

from app.auth.guards import signed_in_only

bp = Blueprint("user", __name__)
bp.before_request(signed_in_only)  # every page here is the signed-in user's own

from app.user import dashboard, keys, marketplace, receipts, wallets  # noqa: E402,F401
