"""/admin/health: the live health board, with a cooldown reset and a "key rejected" clear per channel."""
from __future__ import annotations

from flask import flash
from flask_login import current_user

from app.admin import bp
from app.rendering import render
from app.gateway.board import clear_rejected_key, health_board, reset_cooldown


@bp.route("/health")
def health():
    return render("admin/health.html", "admin/_health_board.html", board=health_board())


@bp.route("/health/<int:channel_id>/cooldown/reset", methods=["POST"])
def reset_channel_cooldown(channel_id: int):
    channel = reset_cooldown(current_user.id, channel_id)
    flash(f"The cooldown of {channel.name} was reset; the next request tries it.", "success")
    return health()


@bp.route("/health/<int:channel_id>/key-rejected/clear", methods=["POST"])
def clear_channel_key_rejected(channel_id: int):
    channel = clear_rejected_key(current_user.id, channel_id)
    flash(f"{channel.name}: \"key rejected\" cleared; the next request tries its key again.", "success")
    return health()
