"""A conversation as a Markdown document: each question with its pasted data, each answer with its route and charge."""
from __future__ import annotations

from app.assistant.conversations import Turn
from app.assistant.models import Conversation
from app.assistant.prompts import NOTICE
from app.billing.pricing import usd_text

FENCE = "~~~~"  # pasted data may hold ``` itself; a tilde fence of four is far less likely to


def conversation_markdown(conversation: Conversation, turns: list[Turn]) -> str:
    """The whole conversation, ready to save as a .md file."""
    lines = [f"# {conversation.title}", "",
             f"Exported from Waybill's research assistant; started {conversation.created_at:%Y-%m-%d %H:%M} UTC.",
             f"*{NOTICE}.*", ""]
    for turn in turns:
        message = turn.message
        if message.role == "user":
            lines += ["## Question", "", message.content, ""]
            if message.data:
                lines += ["Pasted data:", "", FENCE, message.data, FENCE, ""]
            continue
        lines += [f"## Answer ({message.model})", "", message.content or "*(no text)*", ""]
        lines += [f"> {_answer_footer(turn)}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _answer_footer(turn: Turn) -> str:
    """The answer's route, tokens, charge and receipt in one line."""
    message, receipt = turn.message, turn.receipt
    if receipt is None:
        return f"Status: {message.status}" + (f": {message.error}" if message.error else "")
    route = receipt.route_label or "no route"
    fallback = ", after fallback" if receipt.fallback_used else ""
    return (f"Status: {message.status} · route: {route} ({receipt.route_lane or 'none'}{fallback}) · "
            f"tokens: {receipt.prompt_tokens} in, {receipt.completion_tokens} out · charge: {usd_text(receipt.charge)} · "
            f"receipt {receipt.id}")
