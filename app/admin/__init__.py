"""The admin area: one blueprint split by page, every route for admins only."""
from flask import Blueprint

from app.auth.guards import admins_only

bp = Blueprint("admin", __name__)
bp.before_request(admins_only)

from app.admin import audit, catalog, channels, codes, health, overview, review, routes, users  # noqa: E402,F401
