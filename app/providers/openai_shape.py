"""OpenAI's published response schema made true of every answer, whatever an upstream or a translation left out.

Every adapter passes its bodies and chunks through here, so the gateway and every client API built on it
receive answers that strict clients generated from `openai/openai-openapi` accept.
"""
from __future__ import annotations

import time
import uuid

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
# Optional fields the schema types as strings only: a null or a number from a relay is dropped, not passed on.
STRING_ONLY = ("system_fingerprint",)


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def assistant_message(texts: list[str], tool_calls: list[dict]) -> dict:
    """An OpenAI assistant message; its content is null only when the turn is nothing but tool calls."""
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def conform_completion(body: dict, model: str) -> dict:
    """A chat.completion with every field the schema requires; content parts become one string."""
    completion = _envelope(body, "chat.completion", {"id": new_completion_id(), "created": int(time.time()),
                                                     "model": model})
    completion["choices"] = [_choice(choice, index) for index, choice in enumerate(_dicts(body.get("choices")))]
    return completion


class ChunkShaper:
    """Conforms the chunks of one stream; a chunk without an id or created gets the stream's own."""

    def __init__(self, model: str) -> None:
        self.defaults = {"id": new_completion_id(), "created": int(time.time()), "model": model}

    def __call__(self, chunk: dict) -> dict:
        return conform_chunk(chunk, self.defaults)


def conform_chunk(chunk: dict, defaults: dict) -> dict:
    """A chat.completion.chunk with every field the schema requires, missing ones taken from defaults."""
    conformed = _envelope(chunk, "chat.completion.chunk", defaults)
    conformed["choices"] = [_chunk_choice(choice, index) for index, choice in enumerate(_dicts(chunk.get("choices")))]
    return conformed


def conform_embeddings(body: dict, model: str) -> dict:
    """An embeddings list whose items say what they are and where they stand."""
    data = [{**item, "object": "embedding", "index": _int(item.get("index"), index)}
            for index, item in enumerate(_dicts(body.get("data")))]
    conformed = {**body, "object": "list", "model": _text(body.get("model")) or model, "data": data}
    usage = body.get("usage")
    if isinstance(usage, dict):
        prompt = _int(usage.get("prompt_tokens"), 0)
        conformed["usage"] = {**usage, "prompt_tokens": prompt, "total_tokens": _int(usage.get("total_tokens"), prompt)}
    return conformed


def _envelope(body: dict, kind: str, defaults: dict) -> dict:
    conformed = {key: value for key, value in body.items() if not (key in STRING_ONLY and not isinstance(value, str))}
    conformed.update(object=kind, id=_text(body.get("id")) or defaults["id"],
                     created=_int(body.get("created"), defaults["created"]),
                     model=_text(body.get("model")) or defaults["model"])
    if conformed.get("service_tier") not in (*SERVICE_TIERS, None):
        del conformed["service_tier"]  # a relay's own tier names (e.g. "on_demand") are not OpenAI's
    if isinstance(body.get("usage"), dict):
        conformed["usage"] = _usage(body["usage"])
    elif "usage" in conformed and kind == "chat.completion":
        del conformed["usage"]  # the schema has no null usage on a whole answer
    return conformed


def _usage(usage: dict) -> dict:
    prompt, completion = _int(usage.get("prompt_tokens"), 0), _int(usage.get("completion_tokens"), 0)
    return {**usage, "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": _int(usage.get("total_tokens"), prompt + completion)}


def _choice(choice: dict, index: int) -> dict:
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content, refusal = _content(message.get("content"), message.get("refusal"))
    conformed_message = {**message, "role": "assistant", "content": content, "refusal": refusal}
    if "tool_calls" in message:
        calls = _dicts(message["tool_calls"])
        if calls:
            conformed_message["tool_calls"] = [{**call, "type": call.get("type") or "function"} for call in calls]
        else:
            del conformed_message["tool_calls"]  # some relays send null or []; the schema wants a list of calls
    finish = choice.get("finish_reason")
    return {**choice, "index": _int(choice.get("index"), index), "message": conformed_message,
            "logprobs": choice.get("logprobs"), "finish_reason": finish if finish in FINISH_REASONS else "stop"}


def _chunk_choice(choice: dict, index: int) -> dict:
    delta = dict(choice["delta"]) if isinstance(choice.get("delta"), dict) else {}
    if isinstance(delta.get("content"), list) or "refusal" in delta:
        delta["content"], delta["refusal"] = _content(delta.get("content"), delta.get("refusal"))
    if "tool_calls" in delta:
        calls = _dicts(delta["tool_calls"])
        delta["tool_calls"] = [{**call, "index": _int(call.get("index"), number)} for number, call in enumerate(calls)]
    finish = choice.get("finish_reason")
    if finish is not None and finish not in FINISH_REASONS:
        finish = "stop"
    return {**choice, "index": _int(choice.get("index"), index), "delta": delta, "logprobs": choice.get("logprobs"),
            "finish_reason": finish}


def _content(content, refusal) -> tuple[str | None, str | None]:
    """Content as a string (or null), joining the content parts some compatible upstreams answer with."""
    if isinstance(content, list):
        parts = _dicts(content)
        texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
        refusals = [p["refusal"] for p in parts if isinstance(p.get("refusal"), str)]
        content = "".join(texts) if texts or not refusals else None
        refusal = refusal if isinstance(refusal, str) else ("".join(refusals) or None)
    elif content is not None and not isinstance(content, str):
        content = str(content)
    return content, refusal if isinstance(refusal, str) else None


def _dicts(value) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
