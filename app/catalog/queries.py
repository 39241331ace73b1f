"""Read-only catalog lookups."""
from __future__ import annotations

from app.catalog.models import Model
from app.extensions import db


def model_ids(published_only: bool = False) -> set[str]:
    """Ids of the catalog's models."""
    query = db.select(Model.id)
    if published_only:
        query = query.where(Model.published)
    return set(db.session.scalars(query))
