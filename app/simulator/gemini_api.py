"""Gemini's wire protocol (placeholder until written)."""
from flask import Blueprint

bp = Blueprint("sim_gemini", __name__, url_prefix="/<channel>/v1beta")
