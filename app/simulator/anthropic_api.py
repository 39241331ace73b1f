"""Anthropic's wire protocol (placeholder until written)."""
from flask import Blueprint

bp = Blueprint("sim_anthropic", __name__, url_prefix="/<channel>/v1")
