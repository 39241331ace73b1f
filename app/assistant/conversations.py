"""A user's conversations: start, find (only their own), list, and read with each answer's receipt."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func

from app.assistant.datacard import Attachment, DataError, read_attachment
from app.assistant.models import AnswerStatus, ChatMessage, Conversation
from app.database import utcnow, write_transaction
from app.extensions import db
from app.gateway.models import Receipt

TITLE_CHARS = 80


def start_conversation(user_id: int) -> Conversation:
    """A new, empty conversation for the user, with the model and lane of their latest one preselected."""
    latest = db.session.scalars(db.select(Conversation).where(Conversation.user_id == user_id)
                                .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(1)).first()
    with write_transaction():
        conversation = Conversation(user_id=user_id, model=latest.model if latest else None,
                                    lane=latest.lane if latest else "any")
        db.session.add(conversation)
    return conversation


def find_conversation(user_id: int, conversation_id: int) -> Conversation | None:
    """The user's own conversation, or None: anyone else's is indistinguishable from a missing one."""
    return db.session.scalars(db.select(Conversation).where(
        Conversation.id == conversation_id, Conversation.user_id == user_id)).first()


@dataclass(frozen=True)
class ConversationRow:
    """One line of the conversation list."""

    conversation: Conversation
    questions: int
    spent: int  # micro-USD charged for its answers


def conversation_list(user_id: int, limit: int = 100) -> list[ConversationRow]:
    """The user's conversations, most recently active first, with how many questions and what they cost."""
    questions = (db.select(func.count(ChatMessage.id)).where(ChatMessage.conversation_id == Conversation.id,
                                                             ChatMessage.role == "user").scalar_subquery())
    spent = (db.select(func.coalesce(func.sum(Receipt.charge), 0))
             .join(ChatMessage, ChatMessage.receipt_id == Receipt.id)
             .where(ChatMessage.conversation_id == Conversation.id).scalar_subquery())
    rows = db.session.execute(db.select(Conversation, questions, spent).where(Conversation.user_id == user_id)
                              .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit))
    return [ConversationRow(conversation, count, int(total)) for conversation, count, total in rows]


@dataclass(frozen=True)
class Turn:
    """A message as the page shows it: an answer comes with its receipt (None until it has one)."""

    message: ChatMessage
    receipt: Receipt | None

    @property
    def abandoned(self) -> bool:
        """An answer whose process died mid-stream: the sweep has charged its hold and flagged its receipt."""
        # The sweep only settles holds past their deadline, which a live stream's heartbeat keeps pushing back.
        return (self.message.status == AnswerStatus.STREAMING and self.receipt is not None
                and "review" in (self.receipt.flags or []))

    def attachment(self) -> Attachment | None:
        """A question's pasted data as read now, for its data card; None without data (or if it no longer reads)."""
        if not self.message.data:
            return None
        try:
            return read_attachment(self.message.data)
        except DataError:
            return None


def _turns(conversation_id: int, *conditions) -> list[Turn]:
    """The conversation's messages meeting the conditions, in order, each with its receipt, in one query."""
    rows = db.session.execute(db.select(ChatMessage, Receipt)
                              .outerjoin(Receipt, Receipt.id == ChatMessage.receipt_id)
                              .where(ChatMessage.conversation_id == conversation_id, *conditions)
                              .order_by(ChatMessage.id))
    return [Turn(message, receipt) for message, receipt in rows]


def transcript(conversation_id: int) -> list[Turn]:
    """Every message of a conversation in order, each answer with its receipt."""
    return _turns(conversation_id)


def find_turn(conversation_id: int, message_id: int) -> Turn | None:
    """One message of the conversation with its receipt, or None."""
    found = _turns(conversation_id, ChatMessage.id == message_id)
    return found[0] if found else None


def title_from(content: str) -> str:
    """A conversation's title from its first question: its first line, cut at a word."""
    line = " ".join(content.split())[:TITLE_CHARS + 1]
    if len(line) > TITLE_CHARS:
        line = line[:TITLE_CHARS].rsplit(" ", 1)[0] + "…"
    return line or "New conversation"


def delete_conversation(conversation: Conversation) -> None:
    """Delete a conversation and its messages; its answers' receipts and ledger entries stay, as every receipt does."""
    with write_transaction():
        db.session.execute(db.delete(ChatMessage).where(ChatMessage.conversation_id == conversation.id))
        db.session.delete(conversation)


def touch(conversation: Conversation) -> None:
    """Mark the conversation active now, in the caller's transaction."""
    conversation.updated_at = utcnow()
