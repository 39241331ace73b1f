"""Asking and answering: the gateway is called in-process, so answers take the /v1 path's holds, receipts and ledger.

A question is saved with a pending answer; the answer is claimed once (by the page's event stream or,
without scripts, by the form post itself), streamed from the gateway, and saved as it ended.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from flask import current_app
from sqlalchemy import update

from app.assistant.datacard import Attachment, DataError, context_text, read_attachment
from app.assistant.models import AnswerStatus, ChatMessage, Conversation
from app.assistant.conversations import title_from, touch
from app.assistant.prompts import SYSTEM_PROMPT
from app.billing.models import WALLET_NAMES
from app.billing.pricing import usd_text
from app.billing.wallets import wallets_of
from app.database import write_transaction
from app.extensions import db
from app.gateway.errors import GatewayError
from app.gateway.principal import Principal
from app.gateway.quote import Quote, quote
from app.gateway.service import choices_text, serve
from app.routing.planner import route_table

ANSWER_MAX_TOKENS = 1024   # each answer's max_tokens: it bounds the hold, as for any API request
HISTORY_MESSAGES = 20      # the earlier messages sent along as context
MAX_QUESTION_CHARS = 8_000
STOP_CHECK_S = 0.25        # how often a streaming answer looks for the stop button's flag
LANE_CHOICES = {"any": ("official", "routed"), "official": ("official",), "routed": ("routed",)}


class AskRefused(Exception):
    """A question that is not sent, with the reason to show; no wallet is touched."""


@dataclass(frozen=True)
class Draft:
    """A question as typed, before it is sent."""

    model: str
    lane: str
    content: str
    data: str

    @property
    def lanes(self) -> tuple[str, ...]:
        return LANE_CHOICES.get(self.lane, LANE_CHOICES["any"])


def read_data(data: str) -> Attachment | None:
    """The pasted data read as an attachment, None when nothing is pasted; AskRefused when it cannot be read."""
    try:
        attachment = read_attachment(data)
    except DataError as error:
        raise AskRefused(str(error)) from None
    return attachment if attachment.chars else None


def question_text(content: str, data: str | None) -> str:
    """What the model reads of a user's message: the question, then any pasted data as context."""
    attachment = read_data(data or "")
    if attachment is None:
        return content
    return f"{content}\n\n{context_text(attachment, data)}"


def _sent_question_text(message: ChatMessage) -> str:
    """question_text() of a question already sent; its data read when it was sent, so it is passed on as is."""
    try:
        return question_text(message.content, message.data)
    except AskRefused:
        return f"{message.content}\n\nPasted data:\n{message.data}"


def _history(conversation_id: int, before_id: int | None = None) -> list[dict]:
    """The conversation's earlier questions and delivered answers, as chat messages."""
    query = db.select(ChatMessage).where(ChatMessage.conversation_id == conversation_id)
    if before_id is not None:
        query = query.where(ChatMessage.id < before_id)
    rows = db.session.scalars(query.order_by(ChatMessage.id.desc()).limit(HISTORY_MESSAGES)).all()
    messages = []
    for row in reversed(rows):
        if row.role == "user":
            messages.append({"role": "user", "content": _sent_question_text(row)})
        elif row.content:  # a failed answer delivered nothing; a stopped one, what was read
            messages.append({"role": "assistant", "content": row.content})
    return messages


def chat_body(model: str, history: list[dict]) -> dict:
    """The request the gateway serves: the notice in the system prompt, the history, a bounded answer."""
    return {"model": model, "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *history],
            "max_tokens": answer_tokens(model), "stream": True}


def answer_tokens(model: str) -> int:
    """The most tokens an answer may have: ANSWER_MAX_TOKENS, or less if the model cannot write that many."""
    info = route_table().models.get(model)
    return min(ANSWER_MAX_TOKENS, info.max_output_tokens) if info and info.max_output_tokens else ANSWER_MAX_TOKENS


def price_draft(user_id: int, conversation_id: int, draft: Draft) -> Quote:
    """What the draft would hold, as the gateway would hold it; AskRefused when it cannot be priced."""
    history = [*_history(conversation_id), {"role": "user", "content": question_text(draft.content, draft.data)}]
    try:
        return quote(Principal(user_id, None, lanes=draft.lanes), chat_body(draft.model, history))
    except GatewayError as error:
        raise AskRefused(error.message) from None


def check_covered(user_id: int, priced: Quote) -> None:
    """AskRefused unless an allowed wallet can hold the worst case of a usable route step."""
    if not priced.steps:
        raise AskRefused(f"No route can serve {priced.model_id} in the lanes you allowed right now. Nothing was sent.")
    if priced.first_covered is not None:
        return
    wallets = wallets_of(user_id)
    needs = "; ".join(f"your {WALLET_NAMES[kind]} has {usd_text(wallets[kind].available)} available and this "
                      f"needs up to {usd_text(hold)}"
                      for kind, hold in _largest_hold_per_wallet(priced).items())
    raise AskRefused(f"No allowed wallet can cover this message: {needs}. Nothing was sent. Top up or redeem a "
                     f"code, allow the other lane, or pick a cheaper model.")


def _largest_hold_per_wallet(priced: Quote) -> dict[str, int]:
    holds: dict[str, int] = {}
    for step in priced.steps:
        holds[step.wallet] = max(holds.get(step.wallet, 0), step.hold)
    return holds


def ask(user_id: int, conversation: Conversation, draft: Draft) -> ChatMessage:
    """Save the question and its pending answer, once an allowed wallet is known to cover it."""
    content = draft.content.strip()
    if not content:
        raise AskRefused("Write a question first.")
    if len(content) > MAX_QUESTION_CHARS:
        raise AskRefused(f"The question has {len(content):,} characters; the most is {MAX_QUESTION_CHARS:,}.")
    check_covered(user_id, price_draft(user_id, conversation.id, draft))
    with write_transaction():
        if conversation.title == "New conversation":
            conversation.title = title_from(content)
        conversation.model, conversation.lane = draft.model, draft.lane
        touch(conversation)
        db.session.add(ChatMessage(conversation_id=conversation.id, role="user", content=content,
                                   data=draft.data.strip() or None))
        answer = ChatMessage(conversation_id=conversation.id, role="assistant", model=draft.model,
                             lanes=",".join(draft.lanes), status=AnswerStatus.PENDING)
        db.session.add(answer)
    return answer


def request_stop(message_id: int) -> None:
    """Ask a streaming answer to stop; it settles for what it delivered."""
    with write_transaction():
        db.session.execute(update(ChatMessage).where(ChatMessage.id == message_id).values(stop_requested=True))


def _stop_requested(message_id: int) -> bool:
    stop = db.session.scalar(db.select(ChatMessage.stop_requested).where(ChatMessage.id == message_id))
    db.session.commit()  # end the read: a long stream must not pin an old snapshot
    return bool(stop)


def _claim(message_id: int) -> bool:
    """Take a pending answer for answering; False when another request has it already (or it is finished)."""
    with write_transaction():
        claimed = db.session.execute(update(ChatMessage).where(
            ChatMessage.id == message_id, ChatMessage.status == AnswerStatus.PENDING,
        ).values(status=AnswerStatus.STREAMING)).rowcount
    return claimed == 1


def stream_answer(user_id: int, message_id: int) -> Iterator[str]:
    """Claim a pending answer and yield its text as the gateway streams it; the row is final when this ends.

    Closing the iterator early (the page went away) stops the answer like the stop button: the gateway
    settles for what was delivered.
    """
    if not _claim(message_id):
        return
    delivered: list[str] = []
    ending = {"status": AnswerStatus.DONE, "error": None, "receipt_id": None}
    try:
        message = db.session.get(ChatMessage, message_id)
        principal = Principal(user_id, None, lanes=tuple((message.lanes or "official,routed").split(",")))
        body = chat_body(message.model, _history(message.conversation_id, before_id=message_id))
        db.session.commit()
        served = serve(principal, "assistant", body)
        ending["receipt_id"] = served.receipt_id
        _link_receipt(message_id, served.receipt_id)  # should this process die mid-answer, the page still links it
        yield from _relay_text(message_id, served.events, delivered, ending)
    except GatewayError as error:
        ending.update(status=AnswerStatus.FAILED, error=error.message,
                      receipt_id=error.headers.get("X-Waybill-Receipt"))
    except GeneratorExit:
        ending["status"] = AnswerStatus.STOPPED
        raise
    except Exception:
        # The gateway settles its own hold whatever happens; here the answer must still end, not stay "streaming".
        current_app.logger.exception("assistant answer %s failed", message_id)
        db.session.rollback()
        ending.update(status=AnswerStatus.STOPPED if delivered else AnswerStatus.FAILED,
                      error="Waybill hit an internal error while answering; the receipt shows what was charged.")
    finally:
        _finish(message_id, "".join(delivered), **ending)


def _relay_text(message_id: int, events: Iterator[dict], delivered: list[str], ending: dict) -> Iterator[str]:
    """The text of the gateway's chunks, until they end, the upstream cuts, or the user stops."""
    checked = time.monotonic()
    try:
        for event in events:
            if "error" in event:  # the route failed mid-answer: charged for what was delivered
                ending.update(status=AnswerStatus.STOPPED, error=event["error"]["message"])
                return
            text = choices_text(event, "delta")
            if text:
                delivered.append(text)
                yield text
            if time.monotonic() - checked >= STOP_CHECK_S:
                checked = time.monotonic()
                if _stop_requested(message_id):
                    ending["status"] = AnswerStatus.STOPPED
                    return
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # a stopped or abandoned stream settles now, for what was delivered


def _link_receipt(message_id: int, receipt_id: str) -> None:
    with write_transaction():
        db.session.execute(update(ChatMessage).where(ChatMessage.id == message_id).values(receipt_id=receipt_id))


def _finish(message_id: int, content: str, status: AnswerStatus, error: str | None, receipt_id: str | None) -> None:
    with write_transaction():
        db.session.execute(update(ChatMessage).where(ChatMessage.id == message_id).values(
            content=content, status=status, error=error, receipt_id=receipt_id))


def answer_now(user_id: int, message_id: int) -> None:
    """Answer without a page to stream to (a form posted without scripts): read the whole stream here."""
    for _text in stream_answer(user_id, message_id):
        pass


@dataclass(frozen=True)
class Preview:
    """What the composer shows before sending: the pasted data read, and the cost estimate or why not."""

    attachment: Attachment | None
    data_error: str | None
    quote: Quote | None
    refusal: str | None  # set: the page says so and the send button is off


def preview(user_id: int, conversation_id: int, draft: Draft) -> Preview:
    """Read the pasted data and price the draft, as ask() would, without saving or sending anything."""
    try:
        attachment = read_data(draft.data)
    except AskRefused as error:
        return Preview(None, str(error), None, str(error))
    try:
        priced = price_draft(user_id, conversation_id, draft)
    except AskRefused as error:
        return Preview(attachment, None, None, str(error))
    try:
        check_covered(user_id, priced)
    except AskRefused as error:
        return Preview(attachment, None, priced, str(error))
    return Preview(attachment, None, priced, None)
