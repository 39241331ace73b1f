"""The admin area: one blueprint split by page, every route behind admin_required."""
from flask import Blueprint, abort
from flask_login import current_user

bp = Blueprint("admin", __name__)


@bp.before_request
def admin_required():
    """Every /admin route is for admins only: sign-in for visitors, 403 for other users."""
    if not current_user.is_authenticated:
        from app.extensions import login_manager
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403)


from app.admin import audit, catalog, channels, codes, health, overview, review, routes, users  # noqa: E402,F401
