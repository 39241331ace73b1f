"""Read-only catalog lookups."""
from __future__ import annotations

from app.catalog.models import Model, PriceChange
from app.extensions import db


def model_ids(published_only: bool = False) -> set[str]:
    """Ids of the catalog's models."""
    query = db.select(Model.id)
    if published_only:
        query = query.where(Model.published)
    return set(db.session.scalars(query))


MODELS_PAGE_SIZE = 25
VISIBILITY = ("published", "hidden")


def search_models(query: str = "", provider: str = "", visibility: str = "", page: int = 1,
                  per_page: int = MODELS_PAGE_SIZE):
    """A page of catalog models whose id or name contains the query, narrowed by provider and visibility."""
    select = db.select(Model).order_by(Model.provider, Model.id)
    text = query.strip()
    if text:
        select = select.where(Model.id.contains(text, autoescape=True) | Model.name.contains(text, autoescape=True))
    if provider:
        select = select.where(Model.provider == provider)
    if visibility in VISIBILITY:
        select = select.where(Model.published.is_(visibility == "published"))
    return db.paginate(select, page=max(page, 1), per_page=per_page, error_out=False)


def get_model(model_id: str) -> Model | None:
    """The catalog model with this id, or None."""
    return db.session.get(Model, model_id)


def price_history(model_id: str) -> list[PriceChange]:
    """A model's price changes, newest first."""
    return list(db.session.scalars(db.select(PriceChange).where(PriceChange.model_id == model_id)
                                   .order_by(PriceChange.id.desc())))
