"""User and ApiKey tables."""
from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import utcnow
from app.extensions import db


def new_session_nonce() -> str:
    """A fresh random nonce: sessions signed with the previous one stop working."""
    return secrets.token_urlsafe(24)


class User(UserMixin, db.Model):
    """A person who signs in to the browser pages and owns wallets and API keys."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Part of every session's id: rotating it (logout, password change) ends those sessions on every worker.
    session_nonce: Mapped[str] = mapped_column(String(64), default=new_session_nonce, server_default="")

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="user", order_by="ApiKey.id")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses sessions of inactive users
        return not self.disabled

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session: the user's id and their current session nonce."""
        return f"{self.id}:{self.session_nonce}"


class ApiKey(db.Model):
    """A bearer key for /v1; only its SHA-256 is stored, with a short prefix to recognise it."""

    __tablename__ = "api_key"
    __table_args__ = (CheckConstraint("reserved >= 0", name="reserved_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # None means every published model; otherwise the list of model ids this key may call.
    models: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    lanes: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["official", "routed"])
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked: Mapped[bool] = mapped_column(default=False)
    # Optional limits: requests per minute, and a cap on what the key may spend (micro-USD).
    rpm_limit: Mapped[int | None] = mapped_column(default=None)
    spend_cap: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Against the cap: what settled requests spent, and what requests in flight hold.
    spent: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # The rpm counter: the minute it counts (minutes since the epoch) and the requests let in during it.
    rpm_window: Mapped[int | None] = mapped_column(BigInteger, default=None)
    rpm_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(back_populates="api_keys")

    @property
    def state(self) -> str:
        """active, expired or revoked, as the keys page shows it."""
        if self.revoked:
            return "revoked"
        return "active" if self.is_usable(utcnow()) else "expired"

    def is_usable(self, now: datetime) -> bool:
        """Tell whether the key may authenticate at the given time."""
        return not self.revoked and (self.expires_at is None or self.expires_at > now)


class LoginThrottle(db.Model):
    """Recent sign-in attempts against one account or from one address, counted for every worker and node."""

    __tablename__ = "login_throttle"

    scope: Mapped[str] = mapped_column(String(10), primary_key=True)  # "account" or "address"
    # SHA-256 of the email or address: typed emails that match no account are not kept in the clear.
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(index=True)
    # Attempts in this window that no success took back: failures, and any still checking their password.
    failures: Mapped[int] = mapped_column(default=0)
