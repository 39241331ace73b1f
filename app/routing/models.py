"""Channel and RouteStep tables."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import utcnow
from app.extensions import db


class Channel(db.Model):
    """One configured upstream; its key is stored encrypted and never shown."""

    __tablename__ = "channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(120))
    provider: Mapped[str] = mapped_column(String(20))
    base_url: Mapped[str] = mapped_column(String(500))
    api_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    api_key_last4: Mapped[str | None] = mapped_column(String(4), default=None)
    # Name of an environment variable holding the key, resolved at request time.
    api_key_env: Mapped[str | None] = mapped_column(String(100), default=None)
    lane: Mapped[str] = mapped_column(String(10))
    # Kept as decimal text so the multiplier stays exact on every database.
    price_multiplier_text: Mapped[str] = mapped_column("price_multiplier", String(32), default="1")
    timeout_s: Mapped[float] = mapped_column(default=60.0)
    enabled: Mapped[bool] = mapped_column(default=True)
    model_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def price_multiplier(self) -> Fraction:
        """The exact multiplier applied to official prices on this channel."""
        return Fraction(Decimal(self.price_multiplier_text))


class RouteStep(db.Model):
    """One position of a model's route; position 1 is the primary."""

    __tablename__ = "route_step"
    __table_args__ = (
        UniqueConstraint("model_id", "position", name="uq_route_step_model_position"),
        UniqueConstraint("model_id", "channel_id", name="uq_route_step_model_channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("model.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"), index=True)
    position: Mapped[int]

    channel: Mapped[Channel] = relationship()
