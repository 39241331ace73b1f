"""/admin/routes: one card per model, its steps dragged (or moved by buttons) into order, added and removed."""
from __future__ import annotations

from flask import request
from flask_login import current_user
from werkzeug.exceptions import NotFound

from app.admin import bp
from app.errors import on_http_error
from app.rendering import render
from app.routing.admin import (
    RouteError, RouteNotFound, add_route_step, remove_route_step, reorder_route, route_card, routes_board,
)


@bp.route("/routes")
def routes():
    return render("admin/routes.html", board=routes_board())


@bp.route("/routes/<path:model_id>/order", methods=["POST"])
def reorder(model_id: str):
    names = request.form.getlist("channel")
    return _change(model_id, reorder_route, names, f"Order saved: {', '.join(names)}.")


@bp.route("/routes/<path:model_id>/steps", methods=["POST"])
def add_step(model_id: str):
    name = request.form.get("channel", "")
    return _change(model_id, add_route_step, name, f"{name} added as the last step.")


@bp.route("/routes/<path:model_id>/steps/remove", methods=["POST"])
def remove_step(model_id: str):
    name = request.form.get("channel", "")
    return _change(model_id, remove_route_step, name, f"{name} removed from the route.")


def _change(model_id: str, change, argument, notice: str):
    """Apply one route change and answer with the model's card: updated, or as it was with why (400)."""
    try:
        change(current_user.id, model_id, argument)
    except RouteNotFound:
        return on_http_error(NotFound())
    except RouteError as exc:
        return _card(model_id, status=400, error=str(exc))
    return _card(model_id, notice=notice)


def _card(model_id: str, status: int = 200, **message):
    card = route_card(model_id)
    for key, value in message.items():
        setattr(card, key, value)
    board = routes_board()
    board.cards[:] = [card if other.model_id == model_id else other for other in board.cards]
    return render("admin/routes.html", "admin/_route.html", status=status, board=board, card=card)
