"""Pure translation for channels: OpenAI chat bodies to Anthropic's Messages API, and its answers back.

The other way round, for Claude clients calling Waybill, lives in app/proxy/clients/anthropic.py.
"""
from __future__ import annotations

import json
import re
import time
import uuid

from app.providers.base import ErrorClass, TokenUsage, UpstreamError
from app.providers.openai_shape import assistant_message
from app.providers.redact import redact

DATA_URL = re.compile(r"^data:(?P<media_type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
SYSTEM_ROLES = ("system", "developer")

FINISH_OF_STOP = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}
TOOL_CHOICE_TO_ANTHROPIC = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
               429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}


def anthropic_error(status: int, message: str) -> dict:
    """Anthropic's error envelope for an HTTP status, as a body or the data of an `error` event."""
    error_type = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": error_type, "message": message}}


# --- OpenAI request → Anthropic request ------------------------------------------------------------

def openai_request_to_anthropic(body: dict, upstream_model: str, default_max_tokens: int) -> dict:
    """An OpenAI chat body as a Messages API body; ValueError when it holds something Anthropic cannot take."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    if body.get("n") not in (None, 1):
        raise ValueError("Anthropic models return one choice: 'n' must be 1")
    system: list[str] = []
    turns: list[dict] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{index}] must be an object")
        role = message.get("role")
        if role in SYSTEM_ROLES:
            system.append(_text_of(message.get("content"), f"messages[{index}]"))
            continue
        if role == "user":
            turn = {"role": "user", "content": _user_content(message.get("content"), index)}
        elif role == "assistant":
            turn = {"role": "assistant", "content": _assistant_blocks(message, index)}
        elif role == "tool":
            turn = {"role": "user", "content": [_tool_result_block(message, index)]}
        else:
            raise ValueError(f"messages[{index}]: unsupported role {role!r}")
        _append_merged(turns, turn)

    result: dict = {"model": upstream_model, "messages": turns,
                    "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens}
    if system:
        result["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            result[name] = body[name]
    stop = body.get("stop")
    if stop:
        result["stop_sequences"] = _strings([stop] if isinstance(stop, str) else stop, "'stop'")
    if body.get("stream"):
        result["stream"] = True
    if isinstance(body.get("user"), str):
        result["metadata"] = {"user_id": body["user"]}
    _copy_tools_to_anthropic(body, result)
    return result


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value)


def _objects(value, where: str) -> list[dict]:
    """A list of objects (null is none); ValueError rather than a crash for a body edge validation missed."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{where} must be a list of objects")
    return value


def _strings(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where} must be a string or a list of strings")
    return value


def _text_of(content, where: str) -> str:
    """The text of content given as a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(f"{where}: content must be a string or a list of parts")
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ValueError(f"{where}: unsupported content part type {kind!r} here; only text is allowed")
        text = part.get("text") or part.get("refusal") or ""
        if not isinstance(text, str):
            raise ValueError(f"{where}: a text part's text must be a string")
        texts.append(text)
    return "\n\n".join(texts)


def _user_content(content, index: int) -> str | list[dict]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(f"messages[{index}]: content must be a string or a list of parts")
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": _text_of([part], f"messages[{index}]")})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), index))
        else:
            raise ValueError(f"messages[{index}]: unsupported content part type {kind!r}; "
                             "Anthropic models take 'text' and 'image_url' parts")
    return blocks


def _image_block(image_url, index: int) -> dict:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise ValueError(f"messages[{index}]: image_url needs a 'url'")
    match = DATA_URL.match(url)
    if match:
        return {"type": "image", "source": {"type": "base64", "media_type": match["media_type"],
                                            "data": match["data"]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise ValueError(f"messages[{index}]: an image must be a base64 data: URL or an http(s) URL")


def _assistant_blocks(message: dict, index: int) -> list[dict]:
    text = _text_of(message.get("content"), f"messages[{index}]")
    # Anthropic rejects empty text blocks; clients send content "" or null next to tool calls.
    blocks = [{"type": "text", "text": text}] if text else []
    for call in _objects(message.get("tool_calls"), f"messages[{index}].tool_calls"):
        function = call.get("function")
        if not isinstance(function, dict) or not _is_text(function.get("name")) or not _is_text(call.get("id")):
            raise ValueError(f"messages[{index}]: each tool call needs a string 'id' and a function 'name'")
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"],
                       "input": _arguments(function.get("arguments"), index)})
    return blocks


def _arguments(arguments, index: int) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        raise ValueError(f"messages[{index}]: tool call arguments must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"messages[{index}]: tool call arguments must be a JSON object")
    return parsed


def _tool_result_block(message: dict, index: int) -> dict:
    if not _is_text(message.get("tool_call_id")):
        raise ValueError(f"messages[{index}]: a tool message needs a string 'tool_call_id'")
    return {"type": "tool_result", "tool_use_id": message["tool_call_id"],
            "content": _text_of(message.get("content"), f"messages[{index}]")}


def _append_merged(turns: list[dict], turn: dict) -> None:
    """Append a turn, merging it into the previous one of the same role: Anthropic requires alternation."""
    if not turns or turns[-1]["role"] != turn["role"]:
        turns.append(turn)
        return
    previous = turns[-1]
    previous["content"] = _as_blocks(previous["content"]) + _as_blocks(turn["content"])


def _as_blocks(content: str | list[dict]) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _copy_tools_to_anthropic(body: dict, result: dict) -> None:
    tools = _objects(body.get("tools"), "'tools'")
    if tools:
        result["tools"] = [_tool_to_anthropic(tool) for tool in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_TO_ANTHROPIC:
            raise ValueError(f"unsupported tool_choice {choice!r}")
        result["tool_choice"] = dict(TOOL_CHOICE_TO_ANTHROPIC[choice])
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not _is_text(name):
            raise ValueError("a named tool_choice needs function.name")
        result["tool_choice"] = {"type": "tool", "name": name}
    if body.get("parallel_tool_calls") is False and tools:
        result.setdefault("tool_choice", {"type": "auto"})
        if result["tool_choice"]["type"] != "none":
            result["tool_choice"]["disable_parallel_tool_use"] = True


def _tool_to_anthropic(tool) -> dict:
    function = tool.get("function") if tool.get("type") == "function" else None
    if not isinstance(function, dict) or not _is_text(function.get("name")):
        raise ValueError("only tools of type 'function' with a name are supported")
    converted = {"name": function["name"],
                 "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


# --- Anthropic response → OpenAI response ----------------------------------------------------------

def anthropic_response_to_openai(data: dict) -> dict:
    """A Messages API response as an OpenAI chat.completion."""
    texts, tool_calls = [], []
    for block in data.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            tool_calls.append(tool_call_of_block(block))
        # thinking and server-tool blocks have no OpenAI counterpart, so they are left out
    completion = {"id": data.get("id"), "object": "chat.completion", "created": int(time.time()),
                  "model": data.get("model"),
                  "choices": [{"index": 0, "message": assistant_message(texts, tool_calls), "logprobs": None,
                               "finish_reason": FINISH_OF_STOP.get(data.get("stop_reason"), "stop")}]}
    if isinstance(data.get("usage"), dict):
        completion["usage"] = _openai_usage(data["usage"])
    return completion


def tool_call_of_block(block: dict) -> dict:
    """A tool_use block as an OpenAI tool call."""
    return {"id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})}}


def anthropic_usage(usage: dict | None) -> TokenUsage | None:
    """Anthropic usage in OpenAI's terms (prompt includes cache reads and writes); None when absent."""
    if not isinstance(usage, dict):
        return None
    values = [usage.get(name) or 0 for name in
              ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")]
    if not isinstance(usage.get("input_tokens"), int) or not all(isinstance(v, int) for v in values):
        return None
    if min(values) < 0:
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "upstream reported negative usage")
    fresh, cache_read, cache_creation, output = values
    return TokenUsage(fresh + cache_read + cache_creation, output, cache_read)


def _openai_usage(usage: dict) -> dict:
    tokens = anthropic_usage(usage) or TokenUsage(0, 0)
    return {"prompt_tokens": tokens.prompt_tokens, "completion_tokens": tokens.completion_tokens,
            "total_tokens": tokens.prompt_tokens + tokens.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": tokens.cached_tokens},
            # Cache writes are priced apart upstream; kept so a caller can see them.
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens") or 0}


# --- Anthropic stream → OpenAI chunks --------------------------------------------------------------

class AnthropicToOpenAIStream:
    """Turns Anthropic SSE events into OpenAI chat.completion.chunk dicts, one event at a time."""

    def __init__(self) -> None:
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.model: str | None = None
        self.usage: TokenUsage | None = None
        self.finished = False
        self._usage_fields: dict = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool call index

    def feed(self, event: str | None, data: dict) -> list[dict]:
        """The chunks to emit for one event; an `error` event raises UpstreamError."""
        kind = event or data.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        # New event types may appear at any time (Anthropic's versioning policy), so unknown ones are ignored.
        return handler(data) if handler else []

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    def _on_message_start(self, data: dict) -> list[dict]:
        message = data.get("message") or {}
        self.id = message.get("id") or self.id
        self.model = message.get("model")
        self._note_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: dict) -> list[dict]:
        block = data.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") == "tool_use":
            index = self._tool_index[data.get("index")] = len(self._tool_index)
            return [self._chunk({"tool_calls": [{"index": index, "id": block.get("id"), "type": "function",
                                                 "function": {"name": block.get("name"), "arguments": ""}}]})]
        return []

    def _on_content_block_delta(self, data: dict) -> list[dict]:
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = self._tool_index.get(data.get("index"), 0)
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]})]
        return []

    def _on_message_delta(self, data: dict) -> list[dict]:
        self._note_usage(data.get("usage"))
        # output_tokens is final only here; message_start's count is a placeholder.
        if "output_tokens" in (data.get("usage") or {}):
            self.usage = anthropic_usage(self._usage_fields)
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        return [self._chunk({}, FINISH_OF_STOP.get(stop_reason, "stop"))] if stop_reason else []

    def _on_message_stop(self, data: dict) -> list[dict]:
        self.finished = True
        if self.usage is None:
            return []
        return [{"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [], "usage": _openai_usage(self._usage_fields)}]

    def _on_error(self, data: dict) -> list[dict]:
        error = data.get("error") or {}
        message = f"error event: {error.get('type', 'error')}: {error.get('message', '')}"
        raise UpstreamError(ErrorClass.UPSTREAM_5XX, redact(message)[:300])

    def _note_usage(self, usage) -> None:
        """Merge usage counts; message_delta carries cumulative totals that overwrite message_start's."""
        if isinstance(usage, dict):
            self._usage_fields.update({k: v for k, v in usage.items() if v is not None})
