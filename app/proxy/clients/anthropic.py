"""Anthropic's Messages API for Claude clients: their requests to OpenAI chat bodies, and the answers back.

Outbound translation, for Anthropic channels, lives in app/providers/anthropic_format.py; the two share
its wire helpers.
"""
from __future__ import annotations

import re
import uuid

from app.gateway.validation import COUNT_TOKENS, MESSAGES, check_body
from app.providers.anthropic_format import tool_call_of_block
from app.providers.openai_shape import assistant_message
from app.proxy.clients import tool_arguments

STOP_OF_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                  "content_filter": "refusal"}
TOOL_CHOICE_TO_OPENAI = {"auto": "auto", "none": "none", "any": "required"}


# --- Anthropic request → OpenAI request (for /v1/messages) ------------------------------------------

def anthropic_request_to_openai(body: object, counting: bool = False) -> dict:
    """A Messages API request as an OpenAI chat body; ValueError on missing fields or unknown blocks.

    A count_tokens request (`counting`) is the same body without max_tokens.
    """
    check_body(COUNT_TOKENS if counting else MESSAGES, body)
    model, messages, max_tokens = body["model"], body["messages"], body.get("max_tokens")
    converted: list[dict] = []
    system = body.get("system")
    if system:
        converted.append({"role": "system", "content": _blocks_text(system, "system")})
    for index, message in enumerate(messages):
        if message["role"] == "user":
            converted.extend(_user_to_openai(message["content"], index))
        else:
            converted.append(_assistant_to_openai(message["content"], index))

    result: dict = {"model": model, "messages": converted}
    if max_tokens is not None:
        result["max_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            result[name] = body[name]
    if body.get("stop_sequences"):
        result["stop"] = list(body["stop_sequences"])
    if body.get("stream"):
        # The Messages stream reports usage in message_delta, so OpenAI's usage chunk is always needed.
        result["stream"] = True
        result["stream_options"] = {"include_usage": True}
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id is not None:
        result["user"] = user_id
    _copy_tools_to_openai(body, result)
    return result


def _blocks_text(content, where: str) -> str:
    """The text of a string or of a list of text blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(f"{where}: must be a string or a list of text blocks")
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(f"{where}: unsupported block type {kind!r} here; only text is allowed")
    return "\n\n".join(block.get("text", "") for block in content)


def _user_to_openai(content, index: int) -> list[dict]:
    """A user turn: its tool results become tool messages first, then the rest stays a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise ValueError(f"messages.{index}.content: must be a string or a list of blocks")
    tool_messages, parts = [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            if not block.get("tool_use_id"):
                raise ValueError(f"messages.{index}: tool_result needs 'tool_use_id'")
            tool_messages.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                                  "content": _blocks_text(block.get("content") or "", f"messages.{index}.tool_result")})
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block.get("source"), index)}})
        else:
            raise ValueError(f"messages.{index}: unsupported content block type {kind!r}")
    if not parts:
        return tool_messages
    only_text = len(parts) == 1 and parts[0]["type"] == "text"
    return tool_messages + [{"role": "user", "content": parts[0]["text"] if only_text else parts}]


def _image_url(source, index: int) -> str:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and source.get("media_type") and source.get("data"):
        return f"data:{source['media_type']};base64,{source['data']}"
    if kind == "url" and source.get("url"):
        return source["url"]
    raise ValueError(f"messages.{index}: an image source must be base64 (media_type, data) or url")


def _assistant_to_openai(content, index: int) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise ValueError(f"messages.{index}.content: must be a string or a list of blocks")
    texts, tool_calls = [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            if not block.get("id") or not block.get("name"):
                raise ValueError(f"messages.{index}: tool_use needs 'id' and 'name'")
            tool_calls.append(tool_call_of_block(block))
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed reasoning only Anthropic can read back; other providers would reject it
        else:
            raise ValueError(f"messages.{index}: unsupported content block type {kind!r}")
    return assistant_message(texts, tool_calls)


def _copy_tools_to_openai(body: dict, result: dict) -> None:
    tools = body.get("tools")
    if tools:
        result["tools"] = [_tool_to_openai(tool) for tool in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            if not choice.get("name"):
                raise ValueError("tool_choice: type 'tool' needs 'name'")
            result["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif kind in TOOL_CHOICE_TO_OPENAI:
            result["tool_choice"] = TOOL_CHOICE_TO_OPENAI[kind]
        else:
            raise ValueError(f"tool_choice: unsupported type {kind!r}")
        if choice.get("disable_parallel_tool_use") and tools:
            result["parallel_tool_calls"] = False


def _tool_to_openai(tool) -> dict:
    # Server tools (web search, bash, ...) carry a versioned type and only Anthropic runs them.
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or not tool.get("name"):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise ValueError(f"tools: only client tools with a name and input_schema are supported, not {kind!r}")
    function = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


# --- OpenAI response → Anthropic response (for /v1/messages) ----------------------------------------

def openai_response_to_anthropic(data: dict, requested_model: str) -> dict:
    """An OpenAI chat.completion as a Messages API response."""
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or _new_id("toolu_"), "name": function.get("name"),
                        "input": tool_arguments(function.get("arguments"))})
    if not content:
        content.append({"type": "text", "text": ""})  # clients read content[0]; never hand them an empty list
    return {"id": _message_id(data.get("id")), "type": "message", "role": "assistant", "model": requested_model,
            "content": content, "stop_reason": STOP_OF_FINISH.get(choice.get("finish_reason"), "end_turn"),
            "stop_sequence": None, "usage": _anthropic_usage_body(data.get("usage"))}


def _anthropic_usage_body(usage) -> dict:
    """OpenAI usage in Anthropic's terms: input_tokens excludes cached (and cache-write) tokens."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details") or {}
    cached = (details.get("cached_tokens") if isinstance(details, dict) else 0) or 0
    creation = usage.get("cache_creation_input_tokens") or 0
    return {"input_tokens": max(0, (usage.get("prompt_tokens") or 0) - cached - creation),
            "output_tokens": usage.get("completion_tokens") or 0,
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": creation}


def _message_id(openai_id) -> str:
    if isinstance(openai_id, str) and openai_id:
        return "msg_" + re.sub(r"^(chatcmpl-|msg_)", "", openai_id)
    return _new_id("msg_")


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


# --- OpenAI chunks → Anthropic stream (for /v1/messages) --------------------------------------------

class OpenAIToAnthropicStream:
    """Turns OpenAI chunk dicts into Anthropic SSE events `(event_name, data)`; call finish() at the end."""

    def __init__(self, requested_model: str) -> None:
        self.requested_model = requested_model
        self.stop_reason: str | None = None
        self.usage: dict | None = None
        self._started = False
        self._finished = False
        self._block_index = -1
        self._open_block: tuple[str, int | None] | None = None  # ("text", None) or ("tool_use", tool call index)

    def feed(self, chunk: dict) -> list[tuple[str, dict]]:
        """The events for one OpenAI chunk."""
        events = self._start(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._open(("text", None), {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                events += self._tool_call_delta(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_OF_FINISH.get(choice["finish_reason"], "end_turn")
        return events

    def finish(self) -> list[tuple[str, dict]]:
        """Close the open block and end the message; later calls return nothing."""
        if self._finished:
            return []
        self._finished = True
        events = self._start(None) + self._close()
        usage = _anthropic_usage_body(self.usage)
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": self.stop_reason or "end_turn",
                                                   "stop_sequence": None},
                                         "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _start(self, openai_id: str | None) -> list[tuple[str, dict]]:
        if self._started:
            return []
        self._started = True
        # Input tokens arrive only with OpenAI's final usage chunk; message_delta carries the real counts.
        message = {"id": _message_id(openai_id), "type": "message", "role": "assistant", "model": self.requested_model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [("message_start", {"type": "message_start", "message": message})]

    def _tool_call_delta(self, call: dict) -> list[tuple[str, dict]]:
        events = []
        tool_index = call.get("index", 0)
        function = call.get("function") or {}
        if self._open_block != ("tool_use", tool_index):
            block = {"type": "tool_use", "id": call.get("id") or _new_id("toolu_"), "name": function.get("name"),
                     "input": {}}
            events += self._open(("tool_use", tool_index), block)
        if function.get("arguments"):
            events.append(self._delta({"type": "input_json_delta", "partial_json": function["arguments"]}))
        return events

    def _open(self, kind: tuple[str, int | None], block: dict) -> list[tuple[str, dict]]:
        if self._open_block == kind:
            return []
        events = self._close()
        self._block_index += 1
        self._open_block = kind
        return events + [("content_block_start", {"type": "content_block_start", "index": self._block_index,
                                                  "content_block": block})]

    def _close(self) -> list[tuple[str, dict]]:
        if self._open_block is None:
            return []
        self._open_block = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._block_index})]

    def _delta(self, delta: dict) -> tuple[str, dict]:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._block_index, "delta": delta})
