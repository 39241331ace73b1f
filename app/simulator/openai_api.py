"""OpenAI's wire protocol: chat completions (JSON and SSE), embeddings, models.

On a stream, `status` together with `cut_after` sends that error as an `{"error": …}` event after N
content chunks, as OpenAI and its relays do when they fail mid-answer, instead of answering with the status.
"""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid

from flask import Blueprint, Response, jsonify, request, stream_with_context

from app.simulator.wire import (
    begin, count_tokens, cut_stream, drop_connection, echoed, failure_message, reply_words, sse,
)

bp = Blueprint("sim_openai", __name__, url_prefix="/<channel>/v1")
# What the `loose` knob leaves out: fields OpenAI's schema requires (or types strictly) that loose
# OpenAI-compatible relays never send.
LOOSE_OMITS = ("object", "created", "index", "logprobs", "refusal", "system_fingerprint", "total_tokens",
               "prompt_tokens_details")


def _error(status: int, message: str, retry_after: int | None = None, code: str = "simulated_error"):
    response = jsonify(error={"message": message, "type": "server_error" if status >= 500 else "invalid_request_error",
                              "code": code})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _prompt_text(messages: list) -> str:
    parts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return " ".join(parts)


def _usage(prompt: int, completion: int, cached: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": min(cached, prompt)}}


def _loosen(value):
    """The value without LOOSE_OMITS at any depth."""
    if isinstance(value, dict):
        return {key: _loosen(item) for key, item in value.items() if key not in LOOSE_OMITS}
    if isinstance(value, list):
        return [_loosen(item) for item in value]
    return value


def _parts(texts: list[str]) -> list[dict]:
    return [{"type": "text", "text": text} for text in texts]


def _loose_completion(completion: dict, words: list[str]) -> dict:
    """A completion as a loose relay answers it: text in parts, its own finish and tier names, a null fingerprint."""
    loose = _loosen(completion)
    choice = loose["choices"][0]
    choice["message"]["content"] = _parts(words)
    if choice["finish_reason"] == "stop":
        choice["finish_reason"] = "eos"
    return {**loose, "system_fingerprint": None, "service_tier": "on_demand"}


def _loose_chunk(chunk: dict) -> dict:
    """A chunk as a loose relay streams it: text in parts, finish_reason only at the end, model only beside text."""
    loose = _loosen(chunk)
    choices = loose["choices"]
    for choice in choices:
        if choice["finish_reason"] is None:
            del choice["finish_reason"]
        if choice["delta"].get("content"):
            choice["delta"]["content"] = _parts([choice["delta"]["content"]])
    if not any(choice["delta"].get("content") for choice in choices):
        del loose["model"]
    return loose


@bp.post("/chat/completions")
def chat_completions(channel: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
        return _error(400, "model and messages are required", code="invalid_request")
    model, stream = body["model"], bool(body.get("stream"))
    fault = begin(channel, model, stream, body)
    if fault.drop:
        return drop_connection()
    mid_stream_error = stream and fault.status and fault.cut_after is not None
    if fault.status and not mid_stream_error:
        return _error(fault.status, failure_message(fault, channel), fault.retry_after)
    if fault.bad_body:
        return Response("<html>upstream proxy error</html>", status=200,
                        mimetype="text/event-stream" if stream else "application/json")
    served = echoed(fault, fault.served_model or model)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    n_words = min(fault.reply_tokens, max_tokens) if isinstance(max_tokens, int) and max_tokens > 0 else fault.reply_tokens
    words = reply_words(channel, model, n_words, fault.reply_text)
    prompt = fault.prompt_tokens if fault.prompt_tokens is not None else count_tokens(_prompt_text(body["messages"]))
    usage = _usage(prompt, len(words), fault.cached_tokens)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:20]}"
    created = int(time.time())
    if not stream:
        if fault.cut_after is not None:
            return drop_connection()
        payload = {"id": completion_id, "object": "chat.completion", "created": created, "model": served,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(words)},
                                "finish_reason": "stop" if n_words == fault.reply_tokens else "length",
                                "logprobs": None}],
                   "system_fingerprint": "fp_sim"}
        if not fault.omit_usage:
            payload["usage"] = usage
        return jsonify(_loose_completion(payload, words) if fault.loose else payload)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def send(data: dict) -> bytes:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": served, **data}
        return sse(json.dumps(_loose_chunk(data) if fault.loose else data))

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return send({"system_fingerprint": "fp_sim",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    def events():
        if not fault.loose:  # a loose relay starts straight with text
            yield chunk({"role": "assistant", "content": ""})
        for index, word in enumerate(words):
            if fault.cut_after is not None and index >= fault.cut_after:
                if mid_stream_error:
                    yield sse(json.dumps({"error": {"message": failure_message(fault, channel),
                                                    "type": "server_error", "code": "simulated_error"}}))
                else:
                    cut_stream()
                return
            if fault.chunk_delay_ms:
                time.sleep(fault.chunk_delay_ms / 1000)
            yield chunk({"content": word})
        yield chunk({}, "stop" if n_words == fault.reply_tokens else "length")
        if (include_usage or fault.loose) and not fault.omit_usage:
            yield send({"choices": [], "usage": usage})
        yield sse("[DONE]")

    return Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache"})


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest() * (1 + dimensions // 32)
    return [round((b - 128) / 128, 6) for b in digest[:dimensions]]


@bp.post("/embeddings")
def embeddings(channel: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("model") or body.get("input") in (None, "", []):
        return _error(400, "model and input are required", code="invalid_request")
    fault = begin(channel, body["model"], False, body)
    if fault.drop:
        return drop_connection()
    if fault.status:
        return _error(fault.status, failure_message(fault, channel), fault.retry_after)
    if fault.bad_body:
        return Response("not json", status=200, mimetype="application/json")
    given = body["input"]
    # One string or one flat list of token ids is a single input; any other list holds several.
    single = not isinstance(given, list) or all(type(item) is int for item in given)
    inputs = [given] if single else given
    texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inputs]
    dimensions = int(body.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        vector = _vector(text, dimensions)
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        else:
            data.append({"object": "embedding", "index": index, "embedding": vector})
    prompt = sum(count_tokens(t) for t in texts)
    payload = {"object": "list", "data": data, "model": echoed(fault, fault.served_model or body["model"])}
    if not fault.omit_usage:
        payload["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return jsonify(_loosen(payload) if fault.loose else payload)


@bp.get("/models")
def models(channel: str):
    begin(channel, None, False, {})
    ids = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    return jsonify(object="list", data=[{"id": m, "object": "model", "created": 0, "owned_by": channel} for m in ids])
