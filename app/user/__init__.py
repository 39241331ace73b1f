"""The signed-in user's pages, one blueprint split by page: dashboard, wallets, keys, models, receipts."""
from flask import Blueprint
from flask_login import current_user

bp = Blueprint("user", __name__)


@bp.before_request
def login_required():
    """Every page here is the signed-in user's own: visitors go to the sign-in page."""
    if not current_user.is_authenticated:
        from app.extensions import login_manager
        return login_manager.unauthorized()


from app.user import dashboard, keys, marketplace, receipts, wallets  # noqa: E402,F401
