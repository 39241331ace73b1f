"""Google's generateContent for google-genai clients: their requests to OpenAI chat bodies, and the answers back.

Outbound translation, for Gemini channels, lives in app/providers/gemini_format.py; the two share its
vocabulary (sampling fields, tool modes, the functionCall part).
"""
from __future__ import annotations

import json
import uuid
from collections import defaultdict

from app.gateway.catalog import ListedModel
from app.gateway.validation import GENERATE_CONTENT, PATH_MODEL, check_body
from app.providers.gemini_format import SAMPLING, TOOL_MODES, tool_call_of_part
from app.providers.openai_shape import assistant_message
from app.proxy.clients import tool_arguments

OPENAI_SAMPLING = {gemini: openai for openai, gemini in SAMPLING.items()}
TOOL_CHOICES = {mode: choice for choice, mode in TOOL_MODES.items()}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP",
                  "function_call": "STOP"}
AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}
GENERATION_METHODS = ["generateContent", "streamGenerateContent"]


# --- Gemini request -> OpenAI request ------------------------------------------------------------

def gemini_request_to_openai(body: object, model: str, stream: bool) -> dict:
    """A GenerateContentRequest as an OpenAI chat body; ValueError on what a chat body cannot carry."""
    check_body(GENERATE_CONTENT, body)
    check_body(PATH_MODEL, {"model": model})  # the path's model reaches receipts too: no NUL, bounded
    contents = body["contents"]
    messages: list[dict] = []
    system = body.get("systemInstruction")
    if system:
        messages.append({"role": "system", "content": _text_only(system, "systemInstruction")})
    calls = _CallIds()
    for index, content in enumerate(contents):
        messages.extend(_turn(content, index, calls))
    chat: dict = {"model": model, "messages": messages, **_generation_options(body.get("generationConfig"))}
    tools = [tool for entry in body.get("tools") or [] for tool in _function_tools(entry)]
    if tools:
        chat["tools"] = tools
    choice = _tool_choice((body.get("toolConfig") or {}).get("functionCallingConfig"))
    if choice is not None:
        chat["tool_choice"] = choice
    if stream:
        # Gemini streams carry usage, so the gateway's usage chunk is always wanted.
        chat.update(stream=True, stream_options={"include_usage": True})
    return chat


class _CallIds:
    """Ids for the conversation's function calls, so each functionResponse answers the right one."""

    def __init__(self) -> None:
        self.issued = 0
        self.open: dict[str, list[str]] = defaultdict(list)  # function name -> ids not answered yet

    def call(self, part: dict) -> str:
        call_id = part["functionCall"].get("id") or f"call_{self.issued}"
        self.issued += 1
        self.open[part["functionCall"].get("name")].append(call_id)
        return call_id

    def answer(self, response: dict, where: str) -> str:
        waiting = self.open[response.get("name")]
        if response.get("id") in waiting:
            waiting.remove(response["id"])
            return response["id"]
        if not waiting:
            raise ValueError(f"{where}: functionResponse {response.get('name')!r} answers no functionCall")
        return waiting.pop(0)


def _parts(content, where: str) -> list[dict]:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ValueError(f"{where}.parts: a list of parts is required")
    return [p for p in parts if not p.get("thought")]  # thought summaries are the model's, not the conversation's


def _text_only(content, where: str) -> str:
    parts = _parts(content, where)
    if any(not isinstance(p.get("text"), str) for p in parts):
        raise ValueError(f"{where}: only text parts are allowed here")
    return "".join(p["text"] for p in parts)


def _turn(content, index: int, calls: _CallIds) -> list[dict]:
    where = f"contents[{index}]"
    role = (content.get("role") or "user") if isinstance(content, dict) else None
    if role == "model":
        return [_model_turn(_parts(content, where), calls)]
    if role != "user":
        raise ValueError(f"{where}.role: must be 'user' or 'model'")
    tool_messages, parts = [], []
    for part in _parts(content, where):
        if isinstance(part.get("functionResponse"), dict):
            response = part["functionResponse"]
            tool_messages.append({"role": "tool", "tool_call_id": calls.answer(response, where),
                                  "content": _response_text(response.get("response"))})
        else:
            parts.append(_user_part(part, where))
    if not parts:
        return tool_messages
    only_text = len(parts) == 1 and parts[0]["type"] == "text"
    return tool_messages + [{"role": "user", "content": parts[0]["text"] if only_text else parts}]


def _response_text(response) -> str:
    """A function's result as the tool message's text; {"content": x} is how outbound translation wraps x."""
    value = response.get("content", response) if isinstance(response, dict) and len(response) == 1 else response
    return value if isinstance(value, str) else json.dumps(value)


def _user_part(part: dict, where: str) -> dict:
    if isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    inline, linked = part.get("inlineData"), part.get("fileData")
    if isinstance(inline, dict) and inline.get("data"):
        mime = inline.get("mimeType") or ""
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{inline['data']}"}}
        if mime in AUDIO_FORMATS:
            return {"type": "input_audio", "input_audio": {"data": inline["data"], "format": AUDIO_FORMATS[mime]}}
        raise ValueError(f"{where}: inlineData of type {mime!r} is not supported; send images or wav/mp3 audio")
    if isinstance(linked, dict) and str(linked.get("fileUri", "")).startswith(("http://", "https://")):
        return {"type": "image_url", "image_url": {"url": linked["fileUri"]}}
    kinds = sorted(key for key in part if key != "thoughtSignature")
    raise ValueError(f"{where}: unsupported part {kinds}; send text, inlineData, an http(s) fileData or "
                     "functionResponse")


def _model_turn(parts: list[dict], calls: _CallIds) -> dict:
    texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
    return assistant_message(texts, [tool_call_of_part(p, calls.call(p)) for p in parts
                                     if isinstance(p.get("functionCall"), dict)])


def _generation_options(config) -> dict:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError("generationConfig: must be an object")
    # topK, thinkingConfig and safety knobs have no OpenAI counterpart, so they are left out.
    options = {openai: config[gemini] for gemini, openai in OPENAI_SAMPLING.items() if config.get(gemini) is not None}
    if config.get("maxOutputTokens") is not None:
        options["max_tokens"] = config["maxOutputTokens"]
    if config.get("stopSequences"):
        options["stop"] = list(config["stopSequences"])
    if config.get("candidateCount") not in (None, 1):
        options["n"] = config["candidateCount"]
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema") or _json_schema(config.get("responseSchema"))
        options["response_format"] = ({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
                                      if schema else {"type": "json_object"})
    return options


def _function_tools(entry) -> list[dict]:
    if not isinstance(entry, dict) or set(entry) - {"functionDeclarations"}:
        kinds = sorted(entry) if isinstance(entry, dict) else entry
        raise ValueError(f"tools: only functionDeclarations are supported, not {kinds}")
    tools = []
    for declaration in entry.get("functionDeclarations") or []:
        if not isinstance(declaration, dict) or not declaration.get("name"):
            raise ValueError("tools: every functionDeclaration needs a name")
        parameters = declaration.get("parametersJsonSchema") or _json_schema(declaration.get("parameters"))
        function = {"name": declaration["name"], "parameters": parameters or {"type": "object", "properties": {}}}
        if declaration.get("description"):
            function["description"] = declaration["description"]
        tools.append({"type": "function", "function": function})
    return tools


def _json_schema(schema):
    """Gemini's OpenAPI-style Schema (types such as "OBJECT", `nullable`) as JSON Schema."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: (value.lower() if key == "type" and isinstance(value, str) else _json_schema(value))
                 for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    if isinstance(schema.get("properties"), dict):  # property names are the caller's, never rewritten
        converted["properties"] = {name: _json_schema(sub) for name, sub in schema["properties"].items()}
    return converted


def _tool_choice(config):
    if not isinstance(config, dict) or config.get("mode") in (None, "MODE_UNSPECIFIED"):
        return None
    names = config.get("allowedFunctionNames") or []
    if config["mode"] == "ANY" and len(names) == 1:
        return {"type": "function", "function": {"name": names[0]}}
    if config["mode"] not in TOOL_CHOICES:
        raise ValueError(f"toolConfig: unsupported functionCallingConfig mode {config['mode']!r}")
    return TOOL_CHOICES[config["mode"]]


# --- OpenAI response -> Gemini response ----------------------------------------------------------

def openai_response_to_gemini(data: dict, requested_model: str) -> dict:
    """A conforming OpenAI chat.completion (see openai_shape) as a GenerateContentResponse."""
    candidates = [_candidate(choice["index"], _answer_parts(choice["message"]["content"],
                                                             choice["message"].get("tool_calls")),
                             choice["finish_reason"])
                  for choice in data["choices"]]
    return _response(candidates, requested_model, _response_id(data.get("id")), data.get("usage"))


def usage_metadata(usage: dict) -> dict:
    """OpenAI usage as Gemini's usageMetadata: reasoning tokens are thoughts, counted apart from candidates."""
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    thoughts = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": completion - thoughts,
            "totalTokenCount": prompt + completion}
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def _answer_parts(text: str | None, tool_calls: list | None) -> list[dict]:
    parts = [{"text": text}] if text else []
    return parts + [_function_call_part(call) for call in tool_calls or [] if isinstance(call, dict)]


def _function_call_part(call: dict) -> dict:
    function = call.get("function") or {}
    part = {"functionCall": {"id": call.get("id"), "name": function.get("name"),
                             "args": tool_arguments(function.get("arguments"))}}
    signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
    if signature:
        part["thoughtSignature"] = signature
    return part


def _candidate(index: int, parts: list[dict], finish: str | None) -> dict:
    candidate = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish:
        candidate["finishReason"] = FINISH_REASONS.get(finish, "STOP")
    return candidate


def _response(candidates: list[dict], model: str, response_id: str, usage) -> dict:
    response = {"candidates": candidates, "modelVersion": model, "responseId": response_id}
    if isinstance(usage, dict):
        response["usageMetadata"] = usage_metadata(usage)
    return response


def _response_id(openai_id) -> str:
    if isinstance(openai_id, str) and openai_id:
        return openai_id.removeprefix("chatcmpl-")
    return uuid.uuid4().hex[:22]


# --- OpenAI chunks -> Gemini stream --------------------------------------------------------------

class OpenAIToGeminiStream:
    """Turns OpenAI chunk dicts into streamed GenerateContentResponses; call finish() at the end.

    Text goes out as it arrives. Tool calls arrive in pieces but Gemini sends each whole, so they go out
    with the finishReason and usage, in the last response.
    """

    def __init__(self, requested_model: str) -> None:
        self.model = requested_model
        self.response_id: str | None = None
        self.usage: dict | None = None
        self._finish: dict[int, str] = {}
        self._calls: dict[int, dict[int, dict]] = defaultdict(dict)  # choice -> tool call index -> call so far

    def feed(self, chunk: dict) -> list[dict]:
        """The responses for one OpenAI chunk."""
        self.response_id = self.response_id or _response_id(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        responses = []
        for choice in chunk.get("choices") or []:
            index, delta = choice.get("index", 0), choice.get("delta") or {}
            if delta.get("content"):
                responses.append(_response([_candidate(index, [{"text": delta["content"]}], None)], self.model,
                                           self.response_id, None))
            for call in delta.get("tool_calls") or []:
                self._collect(index, call)
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
        return responses

    def finish(self) -> list[dict]:
        """The last response: every choice's finishReason and whole tool calls, with usage."""
        indexes = sorted(set(self._finish) | set(self._calls)) or [0]
        # An empty text part keeps `chunk.text` a string for clients that print every chunk's text.
        candidates = [_candidate(index, _answer_parts(None, list(self._calls[index].values())) or [{"text": ""}],
                                 self._finish.get(index, "stop"))
                      for index in indexes]
        return [_response(candidates, self.model, self.response_id or _response_id(None), self.usage)]

    def _collect(self, choice: int, delta: dict) -> None:
        call = self._calls[choice].setdefault(delta.get("index", 0), {"id": None, "type": "function",
                                                                       "function": {"name": None, "arguments": ""}})
        function = delta.get("function") or {}
        call["id"] = call["id"] or delta.get("id")
        call["function"]["name"] = call["function"]["name"] or function.get("name")
        call["function"]["arguments"] += function.get("arguments") or ""
        if delta.get("extra_content"):
            call["extra_content"] = delta["extra_content"]


# --- Model resources ------------------------------------------------------------------------------

def gemini_model(model: ListedModel) -> dict:
    """A Model resource as Google's models.get gives it; embedding models offer no generateContent."""
    return {"name": f"models/{model.id}", "baseModelId": model.id, "version": "", "displayName": model.name,
            "inputTokenLimit": model.context_window, "outputTokenLimit": model.max_output_tokens,
            "supportedGenerationMethods": GENERATION_METHODS if model.mode == "chat" else []}
