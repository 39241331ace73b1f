"""Who is calling, and what their API key allows."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func

from app.accounts.service import lookup_key
from app.billing.models import LANES
from app.database import utcnow
from app.extensions import db
from app.gateway.errors import GatewayError


@dataclass(frozen=True)
class Principal:
    """The caller's identity and limits, detached from the database session."""

    user_id: int
    api_key_id: int | None  # None for in-process callers acting as a signed-in user
    lanes: tuple[str, ...] = LANES
    models: tuple[str, ...] | None = None
    rpm_limit: int | None = None
    spend_cap: int | None = None
    spent: int = 0


def authenticate(secret: str | None) -> Principal:
    """Resolve a presented key, or raise 401 invalid_api_key."""
    grant = lookup_key(secret) if secret else None
    if grant is None:
        raise GatewayError(401, "invalid_api_key", "missing, unknown, revoked or expired API key")
    return Principal(user_id=grant.user_id, api_key_id=grant.key_id, lanes=grant.lanes, models=grant.models,
                     rpm_limit=grant.rpm_limit, spend_cap=grant.spend_cap, spent=grant.spent)


def check_limits(principal: Principal, model_id: str) -> None:
    """Scope, spend cap and requests-per-minute of the key, before any routing."""
    if principal.models is not None and model_id not in principal.models:
        raise GatewayError(403, "model_not_allowed", f"this key may not use {model_id!r}")
    if principal.spend_cap is not None and principal.spent >= principal.spend_cap:
        raise GatewayError(402, "key_spend_cap", "this key has reached its spend cap")
    if principal.rpm_limit is not None and principal.api_key_id is not None:
        from app.gateway.models import Receipt
        recent = db.session.scalar(db.select(func.count(Receipt.id)).where(
            Receipt.api_key_id == principal.api_key_id, Receipt.created_at > utcnow() - timedelta(seconds=60)))
        if recent >= principal.rpm_limit:
            raise GatewayError(429, "rate_limited", f"this key allows {principal.rpm_limit} requests per minute",
                               retry_after=60)
