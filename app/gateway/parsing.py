"""Validating client bodies and estimating the tokens a request may use."""
from __future__ import annotations

import json
from dataclasses import dataclass

from app.gateway.errors import invalid_request

DEFAULT_MAX_OUTPUT = 4096  # for models whose catalog entry gives no max output


# The content part types OpenAI's chat API defines; anything else is refused, not forwarded.
CONTENT_PART_TYPES = {"text", "image_url", "input_audio", "file", "refusal"}


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
    """A rough token count, about four characters a token."""
    return -(-len(text) // 4)


def parse_chat(body: object) -> ParsedRequest:
    """Check an OpenAI chat completion body."""
    if not isinstance(body, dict):
        raise invalid_request("the body must be a JSON object")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty list")
    has_images = False
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid_request(f"messages[{index}] must be an object with a 'role'")
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in CONTENT_PART_TYPES:
                    raise invalid_request(f"messages[{index}] has an unknown content part type {kind!r}")
                has_images = has_images or kind == "image_url"
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise invalid_request("'tools' must be a list")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise invalid_request("'max_tokens' must be a positive integer")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid_request("'stream' must be true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise invalid_request("'stream_options' must be an object")
    return ParsedRequest("chat", model, body, stream, bool(options.get("include_usage")), max_tokens,
                         _messages_text(messages), has_images=has_images, has_tools=bool(tools))


def parse_embeddings(body: object) -> ParsedRequest:
    """Check an OpenAI embeddings body."""
    if not isinstance(body, dict):
        raise invalid_request("the body must be a JSON object")
    model, given = body.get("model"), body.get("input")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required")
    if given in (None, "", []) or not isinstance(given, (str, list)):
        raise invalid_request("'input' must be a string or a non-empty list")
    items = given if isinstance(given, list) else [given]
    text = " ".join(i if isinstance(i, str) else json.dumps(i) for i in items)
    return ParsedRequest("embeddings", model, body, False, False, None, text)


def _messages_text(messages: list) -> str:
    """All the text a chat request sends, tools and images included, for estimates."""
    return json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
