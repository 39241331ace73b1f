"""Model and PriceChange tables."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, func
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column

from app.billing.pricing import Price
from app.database import utcnow
from app.extensions import db

PROVIDERS = ("openai", "anthropic", "gemini", "openai-compatible")
MODES = ("chat", "embedding")


class Model(db.Model):
    """A public model id with its official price in micro-USD per 1M tokens."""

    __tablename__ = "model"
    __table_args__ = (
        CheckConstraint("input_per_mtok >= 0 AND output_per_mtok >= 0 AND cached_input_per_mtok >= 0",
                        name="prices_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(10), default="chat")
    context_window: Mapped[int] = mapped_column(default=0)
    max_output_tokens: Mapped[int] = mapped_column(default=0)
    input_per_mtok: Mapped[int] = mapped_column(BigInteger)
    output_per_mtok: Mapped[int] = mapped_column(BigInteger)
    # Without a cached price of its own, cached input costs the input price.
    cached_input_per_mtok: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # What the model accepts; a request it cannot take is refused before any upstream is tried.
    supports_vision: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    supports_tools: Mapped[bool] = mapped_column(default=True, server_default=sa_true())
    # A model new to the catalog stays hidden until a config file (or the demo) publishes it.
    published: Mapped[bool] = mapped_column(default=False)
    # When the model entered this catalog: /v1/models reports it as `created`.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.current_timestamp())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def price(self) -> Price:
        """The official price as the pricing functions take it."""
        cached = self.cached_input_per_mtok
        return Price(self.input_per_mtok, self.output_per_mtok,
                     self.input_per_mtok if cached is None else cached)


class PriceChange(db.Model):
    """One change of a model's official price, kept for history."""

    __tablename__ = "price_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("model.id"), index=True)
    field: Mapped[str] = mapped_column(String(30))
    old_per_mtok: Mapped[int | None] = mapped_column(BigInteger)
    new_per_mtok: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(300))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
