"""Wallet, Hold and LedgerEntry tables; the CHECK constraints back up the guarded statements."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.database import utcnow
from app.extensions import db


class Lane(str, enum.Enum):
    """Which wallet settles a channel: official price from Credit, or routed price from routed."""

    OFFICIAL = "official"
    ROUTED = "routed"


class WalletKind(str, enum.Enum):
    """A user's two wallets."""

    CREDIT = "credit"
    ROUTED = "routed"


LANES = tuple(lane.value for lane in Lane)
WALLET_OF_LANE = {Lane.OFFICIAL: WalletKind.CREDIT, Lane.ROUTED: WalletKind.ROUTED}
# How pages and messages name each wallet.
WALLET_NAMES = {WalletKind.CREDIT.value: "Credit", WalletKind.ROUTED.value: "routed balance"}


class HoldStatus(str, enum.Enum):
    """A hold is open until it ends exactly once, settled or voided."""

    OPEN = "open"
    SETTLED = "settled"
    VOIDED = "voided"


class EntryKind(str, enum.Enum):
    """What moved money on a wallet."""

    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"


class Wallet(db.Model):
    """One of a user's two balances; `reserved` is the sum of its open holds."""

    __tablename__ = "wallet"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", name="uq_wallet_user_kind"),
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= balance", name="reserved_within_balance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def available(self) -> int:
        """Micro-USD that a new hold may still take."""
        return self.balance - self.reserved


class Hold(db.Model):
    """Money reserved on a wallet while a request is in flight."""

    __tablename__ = "hold"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("charged IS NULL OR charged >= 0", name="charged_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallet.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default=HoldStatus.OPEN.value, index=True)
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline: Mapped[datetime]
    # A stream's: what it had delivered at its last heartbeat, in micro-USD, which sweep charges if its
    # worker died. None for a whole answer, which sweep charges at the reserved amount.
    delivered: Mapped[int | None] = mapped_column(BigInteger, default=None)
    charged: Mapped[int | None] = mapped_column(BigInteger, default=None)
    underpaid: Mapped[bool] = mapped_column(default=False)
    # Settled by `waybill sweep` at the reserved amount; a person should look at it.
    needs_review: Mapped[bool] = mapped_column(default=False)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class LedgerEntry(db.Model):
    """An immutable signed movement on one wallet, with the balance after it."""

    __tablename__ = "ledger_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallet.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("hold.id"), index=True, default=None)
    memo: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RedeemCode(db.Model):
    """A code worth an amount on one kind of wallet, redeemable once; only its SHA-256 is stored, like an API key."""

    __tablename__ = "redeem_code"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters, enough to recognise a code in a memo or an admin list, too few to use it.
    prefix: Mapped[str] = mapped_column(String(16))
    wallet_kind: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # None: minted on the command line, which acts for no user.
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    redeemed_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    redeemed_by: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None, index=True)
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entry.id"), default=None)
