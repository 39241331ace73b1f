"""The thin API blueprint: parse, authenticate, call the gateway, answer JSON or SSE.

It serves OpenAI's API under /v1, Anthropic's under /v1/messages and Google's generateContent under
/v1 and /v1beta, so its rules carry their own prefixes.
"""
from flask import Blueprint

bp = Blueprint("proxy", __name__)

from app.proxy import views  # noqa: E402,F401
