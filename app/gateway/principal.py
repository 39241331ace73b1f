"""Who is calling, and what their API key allows."""
from __future__ import annotations

from dataclasses import dataclass

from app.accounts import limits
from app.accounts.service import lookup_key
from app.billing.models import LANES
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


def authenticate(secret: str | None) -> Principal:
    """Resolve a presented key, or raise 401 invalid_api_key."""
    grant = lookup_key(secret) if secret else None
    if grant is None:
        raise GatewayError(401, "invalid_api_key", "missing, unknown, revoked or expired API key")
    return Principal(user_id=grant.user_id, api_key_id=grant.key_id, lanes=grant.lanes, models=grant.models,
                     rpm_limit=grant.rpm_limit, spend_cap=grant.spend_cap)


def check_scope(principal: Principal, model_id: str) -> None:
    """Refuse a model outside the key's scope with 403 model_not_allowed."""
    if principal.models is not None and model_id not in principal.models:
        raise GatewayError(403, "model_not_allowed", f"this key may not use {model_id!r}")


def check_limits(principal: Principal, model_id: str) -> None:
    """The key's model scope, then its requests-per-minute limit (which counts this request)."""
    check_scope(principal, model_id)
    if principal.rpm_limit is not None and principal.api_key_id is not None:
        wait_s = limits.take_request_slot(principal.api_key_id)
        if wait_s is not None:
            raise GatewayError(429, "rate_limited", f"this key allows {principal.rpm_limit} requests per minute",
                               retry_after=wait_s)
