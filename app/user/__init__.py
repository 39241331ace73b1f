"""The signed-in user's pages: dashboard, wallets and keys."""
from flask import Blueprint

bp = Blueprint("user", __name__)

from app.user import views  # noqa: E402,F401
