"""/admin/: counts that tell an admin where to look."""
from sqlalchemy import func

from app.accounts.models import User
from app.admin import bp
from app.catalog.models import Model
from app.extensions import db
from app.rendering import render
from app.routing.models import Channel


@bp.route("/")
def index():
    counts = {
        "users": db.session.scalar(db.select(func.count(User.id))),
        "published models": db.session.scalar(db.select(func.count(Model.id)).where(Model.published)),
        "hidden models": db.session.scalar(db.select(func.count(Model.id)).where(~Model.published)),
        "channels": db.session.scalar(db.select(func.count(Channel.id))),
    }
    return render("admin/index.html", counts=counts)
