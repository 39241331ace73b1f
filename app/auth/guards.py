"""The before-request guards of the signed-in areas: visitors go to the sign-in page, non-admins get 403."""
from flask import abort
from flask_login import current_user

from app.extensions import login_manager


def signed_in_only():
    """Send a visitor to the sign-in page; a signed-in user passes."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def admins_only():
    """Send a visitor to the sign-in page and answer 403 to anyone but an admin."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403)
    return None
