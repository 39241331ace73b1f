"""The model marketplace at /models and each model's route preview at /models/<id>."""
from __future__ import annotations

from flask import abort, request
from flask_login import current_user

from app.catalog.models import MODES
from app.database import utcnow
from app.rendering import render
from app.routing.preview import marketplace_listing, route_preview
from app.user import bp


@bp.route("/models")
def marketplace():
    search, mode, mine = request.args.get("q", "").strip(), request.args.get("mode", ""), "mine" in request.args
    mode = mode if mode in MODES else ""  # an unknown mode filters nothing
    # "In my keys' scope": what at least one usable key may call; a key without a model list may call all.
    scopes = [key.models for key in current_user.api_keys if key.is_usable(utcnow())] if mine else None
    return render("user/models.html", "user/_models.html", models=marketplace_listing(search, mode, scopes),
                  search=search, mode=mode, mine=mine, has_keys=scopes != [])


@bp.route("/models/<path:model_id>")
def model_page(model_id: str):
    preview = route_preview(model_id)
    if preview is None:
        abort(404)
    return render("user/model.html", "user/_route_steps.html", preview=preview, root_url=request.host_url.rstrip("/"))
