"""Validating client bodies and estimating the tokens a request may use."""
from __future__ import annotations

import json
from dataclasses import dataclass

from app.gateway.errors import invalid_request
from app.gateway.validation import CHAT, EMBEDDINGS, FieldError, Rule, check_body

DEFAULT_MAX_OUTPUT = 4096  # for models whose catalog entry gives no max output


@dataclass(frozen=True)
class ParsedRequest:
    """What the gateway needs to know of a client's body."""

    endpoint: str
    model: str
    body: dict
    stream: bool
    include_usage: bool
    max_tokens: int | None
    prompt_text: str
    has_images: bool = False
    has_tools: bool = False


def estimate_tokens(text: str) -> int:
    """A conservative token count: four ASCII characters a token, and every two UTF-8 bytes of other text.

    Tokenizers give CJK and other non-Latin scripts about one token a character or more, so
    counting them like English would hold a CJK prompt at a fraction of its cost.
    """
    ascii_chars = len(text.encode("ascii", "ignore"))
    other_bytes = len(text.encode("utf-8", "surrogatepass")) - ascii_chars
    return -(-ascii_chars // 4) + -(-other_bytes // 2)


def parse_chat(body: object) -> ParsedRequest:
    """Check an OpenAI chat completion body: every field's type and bounds, before any hold."""
    _validated(CHAT, body)
    messages = body["messages"]
    has_images = any(isinstance(part, dict) and part.get("type") == "image_url"
                     for message in messages if isinstance(message.get("content"), list)
                     for part in message["content"])
    options = body.get("stream_options") or {}
    return ParsedRequest("chat", body["model"], body, bool(body.get("stream")), bool(options.get("include_usage")),
                         body.get("max_completion_tokens") or body.get("max_tokens"), _messages_text(messages),
                         has_images=has_images, has_tools=bool(body.get("tools")))


def parse_embeddings(body: object) -> ParsedRequest:
    """Check an OpenAI embeddings body: every field's type and bounds, before any hold."""
    _validated(EMBEDDINGS, body)
    given = body["input"]
    items = given if isinstance(given, list) else [given]
    text = " ".join(i if isinstance(i, str) else json.dumps(i) for i in items)
    return ParsedRequest("embeddings", body["model"], body, False, False, None, text)


def _validated(table: Rule, body: object) -> None:
    try:
        check_body(table, body)
    except FieldError as error:
        raise invalid_request(str(error)) from None


def _messages_text(messages: list) -> str:
    """All the text a chat request sends, tools and images included, for estimates."""
    return json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
