"""Gemini's wire protocol: generateContent and streamGenerateContent (SSE), with Google's error envelope.

Fault knobs mean what they mean for OpenAI, with two Gemini-specific readings: `retry_after` travels as a
google.rpc.RetryInfo detail (Google sends no Retry-After header), and on a stream, `status` together with
`cut_after` sends the error as an event after that many content chunks instead of as the HTTP answer.
"""
from __future__ import annotations

import json
import time
import uuid

from flask import Blueprint, Response, jsonify, request, stream_with_context

from app.simulator.wire import (
    begin, count_tokens, cut_stream, drop_connection, echoed, failure_message, reply_words, sse,
)

bp = Blueprint("sim_gemini", __name__, url_prefix="/<channel>/v1beta")

ACTIONS = ("generateContent", "streamGenerateContent")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def _envelope(status: int, message: str, retry_after: int | None = None) -> dict:
    error = {"code": status, "message": message,
             "status": STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")}
    if retry_after is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"}]
    return {"error": error}


def _json(payload: dict, status: int):
    response = jsonify(payload)
    response.status_code = status
    return response


def _error(status: int, message: str):
    return _json(_envelope(status, message), status)


def _texts(parts: list) -> list[str]:
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _prompt_text(body: dict) -> str:
    system = (body.get("systemInstruction") or {}).get("parts") or []
    turns = [turn.get("parts") or [] for turn in body["contents"] if isinstance(turn, dict)]
    return " ".join(_texts(system) + [t for parts in turns for t in _texts(parts)])


def _reply(channel: str, model: str, body: dict, n_words: int, cut_short: bool,
           text: str | None = None) -> tuple[list[dict], str]:
    """The answer's parts (one per token, so a stream has something to split) and its finishReason."""
    turns = [t for t in body["contents"] if isinstance(t, dict)]
    last_parts = (turns[-1].get("parts") or []) if turns else []
    answered = [p["functionResponse"] for p in last_parts if isinstance(p, dict) and "functionResponse" in p]
    if answered:
        said = json.dumps(answered[0].get("response", {}).get("content"))
        return [{"text": word + " "} for word in f"The tool answered {said}".split(" ")], "STOP"
    declared = [d for tool in body.get("tools") or [] for d in tool.get("functionDeclarations") or []]
    last_user = next((t for t in reversed(turns) if t.get("role", "user") == "user"), {})
    if declared and "weather" in " ".join(_texts(last_user.get("parts") or [])).lower():
        return [{"functionCall": {"name": declared[0]["name"], "args": {"city": "Paris"}}}], "STOP"
    return [{"text": word} for word in reply_words(channel, model, n_words, text)], "MAX_TOKENS" if cut_short else "STOP"


def _usage(prompt: int, completion: int, cached: int) -> dict:
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion}
    if cached > 0:
        usage["cachedContentTokenCount"] = min(cached, prompt)  # Gemini counts cached tokens inside the prompt
    return usage


@bp.post("/models/<path:model_action>")
def generate(channel: str, model_action: str):
    model, _, action = model_action.rpartition(":")
    if action not in ACTIONS or not model:
        return _error(404, f"unknown method {model_action!r}")
    stream = action == "streamGenerateContent"
    if "key" in request.args:
        return _error(400, "the API key must travel in the x-goog-api-key header, never in the URL")
    if not request.headers.get("x-goog-api-key"):
        return _error(403, "Method doesn't allow unregistered callers: send an API key in x-goog-api-key")
    if stream and request.args.get("alt") != "sse":
        return _error(400, "the simulator streams only as server-sent events (alt=sse)")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list) or not body["contents"]:
        return _error(400, "contents is required")
    fault = begin(channel, model, stream, body)
    failure = fault.status and _envelope(fault.status, failure_message(fault, channel), fault.retry_after)
    error_mid_stream = bool(stream and failure and fault.cut_after is not None)
    if fault.drop:
        return drop_connection()
    if failure and not error_mid_stream:
        return _json(failure, fault.status)
    if fault.bad_body:
        return Response("<html>upstream proxy error</html>", status=200,
                        mimetype="text/event-stream" if stream else "application/json")

    max_tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
    capped = isinstance(max_tokens, int) and 0 < max_tokens < fault.reply_tokens
    n_words = max_tokens if capped else fault.reply_tokens
    parts, finish = _reply(channel, model, body, n_words, cut_short=capped, text=fault.reply_text)
    prompt = count_tokens(_prompt_text(body))
    tokens = [count_tokens(json.dumps(p["functionCall"])) if "functionCall" in p else 1 for p in parts]
    base = {"modelVersion": echoed(fault, fault.served_model or model), "responseId": uuid.uuid4().hex[:22]}

    def response(chunk_parts: list[dict], completion: int, reason: str | None) -> dict:
        candidate = {"content": {"parts": chunk_parts, "role": "model"}, "index": 0}
        if reason:
            candidate["finishReason"] = reason
        payload = {"candidates": [candidate], **base}
        if not fault.omit_usage:
            payload["usageMetadata"] = _usage(prompt, completion, fault.cached_tokens)
        return payload

    if not stream:
        if fault.cut_after is not None:
            return drop_connection()
        return jsonify(response(_joined(parts), sum(tokens), finish))

    def events():
        for index, part in enumerate(parts):
            if fault.cut_after is not None and index >= fault.cut_after:
                if error_mid_stream:
                    yield sse(json.dumps(failure))
                else:
                    cut_stream()
                return
            if fault.chunk_delay_ms:
                time.sleep(fault.chunk_delay_ms / 1000)
            last = index == len(parts) - 1
            yield sse(json.dumps(response([part], sum(tokens[:index + 1]), finish if last else None)))

    return Response(stream_with_context(events()), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


def _joined(parts: list[dict]) -> list[dict]:
    """A whole answer's parts: the text in one part, as Gemini sends it."""
    text = "".join(p["text"] for p in parts if "text" in p)
    return ([{"text": text}] if text else []) + [p for p in parts if "text" not in p]
