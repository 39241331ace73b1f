"""Conversation and ChatMessage tables: the assistant's history, private to each user."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import utcnow
from app.extensions import db


class AnswerStatus(enum.StrEnum):
    """Where an assistant answer stands."""

    PENDING = "pending"      # asked, not yet sent to the gateway
    STREAMING = "streaming"  # the gateway is answering
    DONE = "done"
    STOPPED = "stopped"      # the user stopped it, or the page went away: charged for what was delivered
    FAILED = "failed"        # the gateway refused or no route served it: nothing was charged


class Conversation(db.Model):
    """One user's conversation; its model and lane choice are what the composer shows next."""

    __tablename__ = "conversation"
    __table_args__ = (Index("ix_conversation_user_updated", "user_id", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    title: Mapped[str] = mapped_column(String(120), default="New conversation")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    lane: Mapped[str] = mapped_column(String(10), default="any")  # any | official | routed


class ChatMessage(db.Model):
    """A user's message (with any pasted data) or an assistant's answer (with its receipt)."""

    __tablename__ = "chat_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    role: Mapped[str] = mapped_column(String(10))  # user | assistant
    content: Mapped[str] = mapped_column(Text, default="")
    # The user's pasted CSV or text, kept as pasted; its data card is computed again when shown.
    data: Mapped[str | None] = mapped_column(Text, default=None)
    # An answer's request: the model asked for and the lanes it may use ("official,routed").
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    lanes: Mapped[str | None] = mapped_column(String(20), default=None)
    status: Mapped[str | None] = mapped_column(String(10), default=None)
    stop_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    receipt_id: Mapped[str | None] = mapped_column(ForeignKey("receipt.id"), default=None)
