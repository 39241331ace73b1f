"""Pure translation between OpenAI chat completions and Anthropic's Messages API, in all four directions."""
from __future__ import annotations

import json
import re
import time
import uuid

from app.providers.base import ErrorClass, TokenUsage, UpstreamError
from app.providers.redact import redact

DATA_URL = re.compile(r"^data:(?P<media_type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
SYSTEM_ROLES = ("system", "developer")

FINISH_OF_STOP = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}
STOP_OF_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                  "content_filter": "refusal"}
TOOL_CHOICE_TO_ANTHROPIC = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
TOOL_CHOICE_TO_OPENAI = {"auto": "auto", "none": "none", "any": "required"}
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
        result["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        result["stream"] = True
    if isinstance(body.get("user"), str):
        result["metadata"] = {"user_id": body["user"]}
    _copy_tools_to_anthropic(body, result)
    return result


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
        texts.append(part.get("text") or part.get("refusal") or "")
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
            blocks.append({"type": "text", "text": part.get("text", "")})
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
    for call in message.get("tool_calls") or []:
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        if not function.get("name") or not call.get("id"):
            raise ValueError(f"messages[{index}]: each tool call needs an 'id' and a function 'name'")
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
    if not message.get("tool_call_id"):
        raise ValueError(f"messages[{index}]: a tool message needs 'tool_call_id'")
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
    tools = body.get("tools")
    if tools:
        result["tools"] = [_tool_to_anthropic(tool) for tool in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_TO_ANTHROPIC:
            raise ValueError(f"unsupported tool_choice {choice!r}")
        result["tool_choice"] = dict(TOOL_CHOICE_TO_ANTHROPIC[choice])
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise ValueError("a named tool_choice needs function.name")
        result["tool_choice"] = {"type": "tool", "name": name}
    if body.get("parallel_tool_calls") is False and tools:
        result.setdefault("tool_choice", {"type": "auto"})
        if result["tool_choice"]["type"] != "none":
            result["tool_choice"]["disable_parallel_tool_use"] = True


def _tool_to_anthropic(tool) -> dict:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not function.get("name"):
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
            tool_calls.append({"id": block.get("id"), "type": "function",
                               "function": {"name": block.get("name"),
                                            "arguments": json.dumps(block.get("input") or {})}})
        # thinking and server-tool blocks have no OpenAI counterpart, so they are left out
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    completion = {"id": data.get("id"), "object": "chat.completion", "created": int(time.time()),
                  "model": data.get("model"),
                  "choices": [{"index": 0, "message": message, "logprobs": None,
                               "finish_reason": FINISH_OF_STOP.get(data.get("stop_reason"), "stop")}]}
    if isinstance(data.get("usage"), dict):
        completion["usage"] = _openai_usage(data["usage"])
    return completion


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


# --- Anthropic request → OpenAI request (for /v1/messages) ------------------------------------------

def anthropic_request_to_openai(body: dict) -> dict:
    """A Messages API request as an OpenAI chat body; ValueError on missing fields or unknown blocks."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    model, messages, max_tokens = body.get("model"), body.get("messages"), body.get("max_tokens")
    if not isinstance(model, str) or not model:
        raise ValueError("model: field required")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: a non-empty list is required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError("max_tokens: a positive integer is required")
    converted: list[dict] = []
    system = body.get("system")
    if system:
        converted.append({"role": "system", "content": _blocks_text(system, "system")})
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            converted.extend(_user_to_openai(message.get("content"), index))
        elif role == "assistant":
            converted.append(_assistant_to_openai(message.get("content"), index))
        else:
            raise ValueError(f"messages.{index}.role: must be 'user' or 'assistant'")

    result: dict = {"model": model, "messages": converted, "max_tokens": max_tokens}
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
    if isinstance(user_id, str):
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
            tool_calls.append({"id": block["id"], "type": "function",
                               "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # signed reasoning only Anthropic can read back; other providers would reject it
        else:
            raise ValueError(f"messages.{index}: unsupported content block type {kind!r}")
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


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
    text = message.get("content")
    if isinstance(text, list):  # some compatible upstreams answer with content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or _new_id("toolu_"), "name": function.get("name"),
                        "input": _tool_input(function.get("arguments"))})
    if not content:
        content.append({"type": "text", "text": ""})  # clients read content[0]; never hand them an empty list
    return {"id": _message_id(data.get("id")), "type": "message", "role": "assistant", "model": requested_model,
            "content": content, "stop_reason": STOP_OF_FINISH.get(choice.get("finish_reason"), "end_turn"),
            "stop_sequence": None, "usage": _anthropic_usage_body(data.get("usage"))}


def _tool_input(arguments) -> dict:
    """Tool arguments as an object; text that is not a JSON object is kept rather than lost."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}


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
