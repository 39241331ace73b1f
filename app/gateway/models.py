"""Receipt and Attempt tables: what happened to every authenticated API request."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import utcnow
from app.extensions import db


class Receipt(db.Model):
    """One request's waybill: route, attempts, wallet, usage, price and charge.

    Route and price fields are copied, not referenced: a receipt keeps what was true when it
    was written even after a channel is renamed or a price changes.
    """

    __tablename__ = "receipt"
    __table_args__ = (Index("ix_receipt_user_created", "user_id", "created_at"),
                      Index("ix_receipt_key_created", "api_key_id", "created_at"),
                      # The admin health board reads recent attempts by this range alone.
                      Index("ix_receipt_created", "created_at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    endpoint: Mapped[str] = mapped_column(String(30))
    # Until the request finishes the row says interrupted: true of a worker that died mid-way.
    status: Mapped[str] = mapped_column(String(12), default="interrupted")
    failure_stage: Mapped[str | None] = mapped_column(String(20), default=None)
    requested_model: Mapped[str] = mapped_column(String(100))
    upstream_model: Mapped[str | None] = mapped_column(String(200), default=None)
    stream: Mapped[bool] = mapped_column(default=False)
    fallback_used: Mapped[bool] = mapped_column(default=False)
    route_channel: Mapped[str | None] = mapped_column(String(64), default=None)
    route_label: Mapped[str | None] = mapped_column(String(120), default=None)
    route_lane: Mapped[str | None] = mapped_column(String(10), default=None)
    route_position: Mapped[int | None] = mapped_column(default=None)
    settlement: Mapped[str | None] = mapped_column(String(10), default=None)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cached_tokens: Mapped[int] = mapped_column(default=0)
    usage_source: Mapped[str] = mapped_column(String(10), default="reported")
    input_per_mtok: Mapped[int | None] = mapped_column(BigInteger, default=None)
    output_per_mtok: Mapped[int | None] = mapped_column(BigInteger, default=None)
    cached_input_per_mtok: Mapped[int | None] = mapped_column(BigInteger, default=None)
    multiplier: Mapped[str | None] = mapped_column(String(32), default=None)
    # The model whose official price applied: the served one when it was substituted and cheaper.
    price_model: Mapped[str | None] = mapped_column(String(100), default=None)
    charge: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int | None] = mapped_column(default=None)
    ttfb_ms: Mapped[int | None] = mapped_column(default=None)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id"), default=None, index=True)
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entry.id"), default=None)
    # An admin's answer to a flagged receipt (review, underpaid): confirmed or refunded, and when.
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    review_outcome: Mapped[str | None] = mapped_column(String(10), default=None)

    attempts: Mapped[list[Attempt]] = relationship(order_by="Attempt.id", cascade="all, delete-orphan")


class Attempt(db.Model):
    """One try of one route step: ok, error (with its class) or skipped (with the reason)."""

    __tablename__ = "attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    receipt_id: Mapped[str] = mapped_column(ForeignKey("receipt.id"), index=True)
    position: Mapped[int]
    channel: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(120))
    lane: Mapped[str] = mapped_column(String(10))
    provider: Mapped[str] = mapped_column(String(20))
    upstream_model: Mapped[str | None] = mapped_column(String(200), default=None)
    served_model: Mapped[str | None] = mapped_column(String(200), default=None)
    outcome: Mapped[str] = mapped_column(String(10))
    http_status: Mapped[int | None] = mapped_column(default=None)
    error_class: Mapped[str | None] = mapped_column(String(30), default=None)
    detail: Mapped[str | None] = mapped_column(String(500), default=None)
    latency_ms: Mapped[int | None] = mapped_column(default=None)
