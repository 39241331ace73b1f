"""Imports every feature's tables so the metadata (and Alembic) sees the whole schema."""
from app.accounts.models import ApiKey, User  # noqa: F401
from app.billing.models import Hold, LedgerEntry, Wallet  # noqa: F401
from app.catalog.models import Model, PriceChange  # noqa: F401
from app.routing.models import Channel, RouteStep  # noqa: F401
from app.gateway.models import Attempt, Receipt  # noqa: F401
from app.routing.health import ChannelHealth  # noqa: F401
from app.audit_trail.models import AuditEvent  # noqa: F401
from app.assistant.models import ChatMessage, Conversation  # noqa: F401
