"""OpenAI's wire protocol: chat completions (JSON and SSE), embeddings, models."""
from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid

from flask import Blueprint, Response, jsonify, request, stream_with_context

from app.simulator.app import begin, count_tokens, cut_stream, drop_connection, reply_words, sse

bp = Blueprint("sim_openai", __name__, url_prefix="/<channel>/v1")


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


@bp.post("/chat/completions")
def chat_completions(channel: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
        return _error(400, "model and messages are required", code="invalid_request")
    model, stream = body["model"], bool(body.get("stream"))
    fault = begin(channel, model, stream, body)
    if fault.drop:
        return drop_connection()
    if fault.status:
        return _error(fault.status, f"simulated {fault.status} from {channel}", fault.retry_after)
    if fault.bad_body:
        return Response("<html>upstream proxy error</html>", status=200,
                        mimetype="text/event-stream" if stream else "application/json")
    served = fault.served_model or model
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    n_words = min(fault.reply_tokens, max_tokens) if isinstance(max_tokens, int) and max_tokens > 0 else fault.reply_tokens
    words = reply_words(channel, model, n_words)
    usage = _usage(count_tokens(_prompt_text(body["messages"])), len(words), fault.cached_tokens)
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
        return jsonify(payload)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return sse(json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                               "model": served, "system_fingerprint": "fp_sim",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}))

    def events():
        yield chunk({"role": "assistant", "content": ""})
        for index, word in enumerate(words):
            if fault.cut_after is not None and index >= fault.cut_after:
                cut_stream()
                return
            if fault.chunk_delay_ms:
                time.sleep(fault.chunk_delay_ms / 1000)
            yield chunk({"content": word})
        yield chunk({}, "stop" if n_words == fault.reply_tokens else "length")
        if include_usage and not fault.omit_usage:
            yield sse(json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                  "model": served, "choices": [], "usage": usage}))
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
        return _error(fault.status, f"simulated {fault.status} from {channel}", fault.retry_after)
    if fault.bad_body:
        return Response("not json", status=200, mimetype="application/json")
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
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
    payload = {"object": "list", "data": data, "model": fault.served_model or body["model"]}
    if not fault.omit_usage:
        payload["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return jsonify(payload)


@bp.get("/models")
def models(channel: str):
    begin(channel, None, False, {})
    ids = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    return jsonify(object="list", data=[{"id": m, "object": "model", "created": 0, "owned_by": channel} for m in ids])
