"""The research assistant: conversations that call the gateway in-process and charge the same wallets."""
from flask import Blueprint

from app.auth.guards import signed_in_only

bp = Blueprint("assistant", __name__)
bp.before_request(signed_in_only)  # a conversation is its owner's alone

from app.assistant import views  # noqa: E402,F401
