"""Translation for channels: OpenAI chat bodies to Gemini's generateContent, and its answers back. No I/O.

The other way round, for google-genai clients calling Waybill, lives in app/proxy/clients/gemini.py.
"""
from __future__ import annotations

import json
import mimetypes
import time
import uuid
from urllib.parse import urlparse

from app.providers.base import TokenUsage

ROLES = {"user": "user", "assistant": "model", "tool": "user", "function": "user"}
SYSTEM_ROLES = ("system", "developer")
TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# OpenAI sampling options with a same-meaning Gemini generationConfig field.
SAMPLING = {"temperature": "temperature", "top_p": "topP", "seed": "seed",
            "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty"}
FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
# JSON Schema keywords Gemini's OpenAPI-subset `parameters` rejects with a 400.
UNSUPPORTED_SCHEMA_KEYS = ("$schema", "additionalProperties")
DEFAULT_IMAGE_MIME = "image/jpeg"


STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 405: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED", 409: "ABORTED",
                413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
                501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def google_error(status: int, message: str, reason: str | None = None, retry_after: int | None = None) -> dict:
    """Google's error envelope for an HTTP status, as a body or a stream event; reason and delay go in details."""
    error: dict = {"code": status, "message": message,
                   "status": STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")}
    details = []
    if reason:
        details.append({"@type": ERROR_INFO, "reason": reason.upper(), "domain": "waybill"})
    if retry_after is not None:
        details.append({"@type": RETRY_INFO, "retryDelay": f"{retry_after}s"})
    if details:
        error["details"] = details
    return {"error": error}


# --- OpenAI request -> Gemini request ------------------------------------------------------------

def openai_request_to_gemini(body: dict) -> dict:
    """Translate an OpenAI chat completions body into a GenerateContentRequest."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ValueError("messages must be a list")
    system_parts: list[dict] = []
    turns: list[dict] = []
    tool_names: dict[str, str] = {}  # tool_call id -> function name, as the conversation assigned them
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{index}] must be an object")
        role = message.get("role")
        if role in SYSTEM_ROLES:
            system_parts.extend(_text_parts(message.get("content"), index))
        elif role in ROLES:
            turns.append({"role": ROLES[role], "parts": _message_parts(message, index, tool_names)})
        else:
            raise ValueError(f"messages[{index}] has unsupported role {role!r}")
    contents = _merge_turns(turns)
    if not contents:
        raise ValueError("at least one user or assistant message with content is required")
    request: dict = {"contents": contents}
    if system_parts:
        request["systemInstruction"] = {"parts": system_parts}
    config = _generation_config(body)
    if config:
        request["generationConfig"] = config
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ValueError("'tools' must be a list")
    if tools:
        request["tools"] = [{"functionDeclarations": [_declaration(t) for t in tools]}]
    if body.get("tool_choice") is not None:
        request["toolConfig"] = {"functionCallingConfig": _calling_config(body["tool_choice"])}
    return request


def _message_parts(message: dict, index: int, tool_names: dict[str, str]) -> list[dict]:
    role = message["role"]
    if role == "tool":
        call_id = message.get("tool_call_id")
        name = tool_names.get(call_id) if isinstance(call_id, str) else None
        if name is None:
            raise ValueError(f"messages[{index}] answers unknown tool_call_id {call_id!r}"[:300])
        return [_function_response(name, message.get("content"), index)]
    if role == "function":  # the legacy form names the function itself
        if not isinstance(message.get("name"), str) or not message["name"]:
            raise ValueError(f"messages[{index}] is a function message without a name")
        return [_function_response(message["name"], message.get("content"), index)]
    parts = _content_parts(message.get("content"), index)
    tool_calls = message.get("tool_calls") if role == "assistant" else None
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise ValueError(f"messages[{index}].tool_calls must be a list")
    for call in tool_calls or []:
        function = _field(call, "function")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise ValueError(f"messages[{index}] has a tool_call without a function name")
        call_id = call.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise ValueError(f"messages[{index}] has a tool_call whose id is not a string")
        tool_names[call_id] = function["name"]
        part = {"functionCall": {"name": function["name"], "args": _arguments(function, index)}}
        signature = _field(_field(call, "extra_content"), "google").get("thought_signature")
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature  # thinking models refuse a function call turn without it
        parts.append(part)
    return parts


def _field(value, name: str) -> dict:
    """An object's sub-object, or {} when either is missing or not an object."""
    inner = value.get(name) if isinstance(value, dict) else None
    return inner if isinstance(inner, dict) else {}


def _arguments(function: dict, index: int) -> dict:
    raw = function.get("arguments") or "{}"
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ValueError(f"messages[{index}] has tool_call arguments that are not JSON") from None
    if not isinstance(args, dict):
        raise ValueError(f"messages[{index}] has tool_call arguments that are not a JSON object")
    return args


def _function_response(name: str, content, index: int) -> dict:
    text = "".join(p["text"] for p in _text_parts(content, index))
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return {"functionResponse": {"name": name, "response": {"content": value}}}


def _text_parts(content, index: int) -> list[dict]:
    """Parts of content that may only hold text (system and tool messages)."""
    parts = _content_parts(content, index)
    if any("text" not in p for p in parts):
        raise ValueError(f"messages[{index}] may only contain text")
    return parts


def _content_parts(content, index: int) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise ValueError(f"messages[{index}].content must be a string or a list of parts")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text", ""), str):
                raise ValueError(f"messages[{index}] has a text part whose text is not a string")
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            parts.append(_image_part(image.get("url") if isinstance(image, dict) else image, index))
        elif kind == "input_audio":
            audio = _field(part, "input_audio")
            if not isinstance(audio.get("data"), str) or not audio["data"]:
                raise ValueError(f"messages[{index}] has an input_audio part without data")
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio["data"]}})
        else:
            raise ValueError(f"messages[{index}] has a content part of unsupported type {kind!r}")
    return parts


def _image_part(url, index: int) -> dict:
    if not isinstance(url, str) or not url:
        raise ValueError(f"messages[{index}] has an image_url without a url")
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise ValueError(f"messages[{index}] has a data: URL that is not base64")
        return {"inlineData": {"mimeType": mime or DEFAULT_IMAGE_MIME, "data": data}}
    if urlparse(url).scheme in ("http", "https"):
        mime = mimetypes.guess_type(urlparse(url).path)[0] or DEFAULT_IMAGE_MIME
        return {"fileData": {"fileUri": url, "mimeType": mime}}
    raise ValueError(f"messages[{index}] has an image_url that is neither a data: nor an http(s) URL")


def _merge_turns(turns: list[dict]) -> list[dict]:
    """Drop empty turns and join neighbours of one role, as Gemini wants turns to alternate."""
    merged: list[dict] = []
    for turn in turns:
        if not turn["parts"]:
            continue
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["parts"].extend(turn["parts"])
        else:
            merged.append({"role": turn["role"], "parts": list(turn["parts"])})
    return merged


def _generation_config(body: dict) -> dict:
    config = {gemini: body[openai] for openai, gemini in SAMPLING.items() if body.get(openai) is not None}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        sequences = [stop] if isinstance(stop, str) else stop
        if not isinstance(sequences, list) or not all(isinstance(sequence, str) for sequence in sequences):
            raise ValueError("'stop' must be a string or a list of strings")
        config["stopSequences"] = sequences
    response_format = body.get("response_format") or {}
    if not isinstance(response_format, dict):
        raise ValueError("'response_format' must be an object")
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = _field(response_format, "json_schema").get("schema")
        if isinstance(schema, dict) and schema:
            config["responseJsonSchema"] = schema
    return config


def _declaration(tool) -> dict:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise ValueError(f"unsupported tool type {tool.get('type') if isinstance(tool, dict) else tool!r}"[:300])
    function = _field(tool, "function")
    if not isinstance(function.get("name"), str) or not function["name"]:
        raise ValueError("every tool needs a function name")
    declaration = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    if isinstance(function.get("parameters"), dict) and function["parameters"]:
        declaration["parameters"] = _gemini_schema(function["parameters"])
    return declaration


def _gemini_schema(schema):
    """The schema without keywords Gemini refuses; property names themselves are kept."""
    if isinstance(schema, list):
        return [_gemini_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned = {}
    for key, value in schema.items():
        if key in UNSUPPORTED_SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            cleaned[key] = {name: _gemini_schema(sub) for name, sub in value.items()}
        else:
            cleaned[key] = _gemini_schema(value)
    return cleaned


def _calling_config(choice) -> dict:
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"mode": TOOL_MODES[choice]}
    name = _field(choice, "function").get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("tool_choice must be 'auto', 'none', 'required' or name a function")
    return {"mode": "ANY", "allowedFunctionNames": [name]}


# --- Gemini response -> OpenAI response ----------------------------------------------------------

def gemini_usage(meta: dict) -> TokenUsage:
    """Gemini's usageMetadata in OpenAI's terms; thinking tokens are billed as output."""
    counts = [meta.get(k) or 0 for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
                                          "cachedContentTokenCount")]
    if not all(isinstance(c, int) for c in counts):
        raise ValueError("usageMetadata counts are not integers")
    if min(counts) < 0:
        raise ValueError("upstream reported negative usage")
    prompt, candidates, thoughts, cached = counts
    return TokenUsage(prompt_tokens=prompt, completion_tokens=candidates + thoughts, cached_tokens=cached)


def openai_usage(usage: TokenUsage, meta: dict) -> dict:
    """An OpenAI usage object for a TokenUsage, with reasoning tokens when Gemini counted thoughts."""
    body = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens}}
    if meta.get("thoughtsTokenCount"):
        body["completion_tokens_details"] = {"reasoning_tokens": meta["thoughtsTokenCount"]}
    return body


def _candidate(data: dict, required: bool = True) -> dict:
    """The first candidate; a blocked prompt has none and reads as a filtered, empty answer."""
    candidates = data.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    if (data.get("promptFeedback") or {}).get("blockReason"):
        return {"finishReason": "SAFETY"}
    if required:
        raise ValueError("response has no candidates")
    return {}


def _split_parts(candidate: dict) -> tuple[str, list[dict]]:
    """Answer text and functionCall parts; thought summaries are not part of the answer."""
    texts, calls = [], []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(part)
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "".join(texts), calls


def tool_call_of_part(part: dict, call_id: str) -> dict:
    """A functionCall part as an OpenAI tool call, keeping a thinking model's signature."""
    call = part["functionCall"]
    tool_call = {"id": call_id, "type": "function",
                 "function": {"name": call.get("name"), "arguments": json.dumps(call.get("args") or {})}}
    if part.get("thoughtSignature"):
        # Where Google's own OpenAI-compatible endpoint puts it, so clients echo it back unchanged.
        tool_call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return tool_call


def finish_reason(gemini_reason: str | None, called_tools: bool) -> str:
    """OpenAI's finish_reason for a Gemini finishReason."""
    if called_tools:
        return "tool_calls"
    if gemini_reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if gemini_reason in FILTERED else "stop"


def gemini_response_to_openai(data: dict, model: str) -> dict:
    """Translate a GenerateContentResponse into an OpenAI chat.completion."""
    candidate = _candidate(data)
    text, calls = _split_parts(candidate)
    message: dict = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
    if calls:
        message["tool_calls"] = [tool_call_of_part(call, f"call_{n}") for n, call in enumerate(calls)]
    body = {"id": _completion_id(data), "object": "chat.completion", "created": int(time.time()),
            "model": data.get("modelVersion") or model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls))}]}
    meta = data.get("usageMetadata")
    if isinstance(meta, dict):
        body["usage"] = openai_usage(gemini_usage(meta), meta)
    return body


def _completion_id(data: dict) -> str:
    return "chatcmpl-" + (data.get("responseId") or uuid.uuid4().hex[:24])


# --- Gemini stream -> OpenAI chunks --------------------------------------------------------------

class GeminiToOpenAIStream:
    """Turns streamed GenerateContentResponses into OpenAI chat.completion.chunk dicts."""

    def __init__(self, model: str):
        self.model = model
        self.id: str | None = None
        self.created = int(time.time())
        self.usage: TokenUsage | None = None
        self.finish_reason: str | None = None  # Gemini's, once a candidate reported one
        self._meta: dict = {}
        self._tool_calls = 0

    def feed(self, event: dict) -> list[dict]:
        """The chunks to emit for one streamed response."""
        chunks = []
        if self.id is None:
            self.id = _completion_id(event)
            self.model = event.get("modelVersion") or self.model
            chunks.append(self._chunk({"role": "assistant", "content": ""}))
        meta = event.get("usageMetadata")
        if isinstance(meta, dict):
            # Gemini repeats cumulative usage on every chunk: the last one is the total.
            self.usage, self._meta = gemini_usage(meta), meta
        candidate = _candidate(event, required=False)  # a chunk may carry only usage
        text, calls = _split_parts(candidate)
        if text:
            chunks.append(self._chunk({"content": text}))
        for call in calls:
            delta = {"index": self._tool_calls, **tool_call_of_part(call, f"call_{self._tool_calls}")}
            self._tool_calls += 1
            chunks.append(self._chunk({"tool_calls": [delta]}))
        self.finish_reason = candidate.get("finishReason") or self.finish_reason
        return chunks

    def finish(self) -> list[dict]:
        """The closing chunks: the finish reason, then usage when the upstream reported it."""
        chunks = [self._chunk({}, finish_reason(self.finish_reason, self._tool_calls > 0))]
        if self.usage is not None:
            chunks.append({**self._base(), "choices": [], "usage": openai_usage(self.usage, self._meta)})
        return chunks

    def _base(self) -> dict:
        return {"id": self.id or _completion_id({}), "object": "chat.completion.chunk", "created": self.created,
                "model": self.model}

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {**self._base(), "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
