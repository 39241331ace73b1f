"""The model marketplace at /models and each model's route preview at /models/<id>."""
from app.rendering import render
from app.user import bp


@bp.route("/models")
def marketplace():
    return render("user/models.html")


@bp.route("/models/<path:model_id>")
def model_page(model_id: str):
    return render("user/models.html")
