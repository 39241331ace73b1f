"""The thin /v1 blueprint: parse, authenticate, call the gateway, answer JSON or SSE."""
from flask import Blueprint

bp = Blueprint("proxy", __name__, url_prefix="/v1")

from app.proxy import views  # noqa: E402,F401
