"""Anthropic's wire protocol: POST /v1/messages as JSON and as typed server-sent events.

Fault knobs behave as on the OpenAI endpoint. One combination is Anthropic-specific: on a stream,
`status` together with `cut_after` sends that error as an SSE `error` event after N content deltas
(as Anthropic does when it is overloaded mid-answer), instead of answering with the status.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass

from flask import Blueprint, Response, jsonify, request, stream_with_context

from app.providers.anthropic_format import anthropic_error
from app.simulator.state import Fault
from app.simulator.wire import (
    begin, count_tokens, cut_stream, drop_connection, echoed, failure_message, reply_words,
)

bp = Blueprint("sim_anthropic", __name__, url_prefix="/<channel>/v1")

WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)
TOOL_INPUT = {"city": "Paris"}


@dataclass
class _Block:
    """One content block of the answer, with the pieces a stream sends it in."""

    kind: str                      # "text" or "tool_use"
    pieces: list[str]
    tool_id: str = ""
    tool_name: str = ""

    def whole(self) -> dict:
        if self.kind == "text":
            return {"type": "text", "text": "".join(self.pieces)}
        return {"type": "tool_use", "id": self.tool_id, "name": self.tool_name,
                "input": json.loads("".join(self.pieces))}


@dataclass
class _Answer:
    blocks: list[_Block]
    output_tokens: int
    stop_reason: str


def _error(status: int, message: str, retry_after: int | str | None = None):
    response = jsonify(anthropic_error(status, message))
    response.status_code = status
    response.headers["request-id"] = "req_" + uuid.uuid4().hex[:24]
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _text(content) -> str:
    """The text of a string or of content blocks, tool results included."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(_text(block.get("content")))
    return " ".join(p for p in parts if p)


def _prompt_text(body: dict) -> str:
    texts = [_text(body.get("system"))] + [_text(m.get("content")) for m in body["messages"]]
    return " ".join(t for t in texts if t)


def _invalid(body) -> str | None:
    """Why a Messages request is malformed, as Anthropic would say it, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required"
    for index, message in enumerate(body["messages"]):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
    return None


def _answer(channel: str, body: dict, fault: Fault) -> _Answer:
    """What to answer: a tool call, a reading of a tool result, or the usual deterministic reply."""
    last = body["messages"][-1]
    content = last.get("content")
    tool_results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"] \
        if isinstance(content, list) else []
    if last["role"] == "user" and tool_results:
        text = "The tool said: " + " ".join(_text(b.get("content")) for b in tool_results)
        words = [w + " " for w in text.split()]
        return _Answer([_Block("text", words)], count_tokens(text), "end_turn")
    tools = body.get("tools") or []
    if last["role"] == "user" and tools and WEATHER.search(_text(content)):
        arguments = json.dumps(TOOL_INPUT)
        # Split as Anthropic does: an empty first delta, then fragments that are not JSON on their own.
        pieces = ["", arguments[:9], arguments[9:]]
        block = _Block("tool_use", pieces, "toolu_" + uuid.uuid4().hex[:24], tools[0].get("name", "tool"))
        return _Answer([block], count_tokens(arguments), "tool_use")
    n_words = min(fault.reply_tokens, body["max_tokens"])
    words = reply_words(channel, body["model"], n_words, fault.reply_text)
    return _Answer([_Block("text", words)], len(words), "end_turn" if n_words == fault.reply_tokens else "max_tokens")


def _usage(body: dict, fault: Fault) -> dict:
    """Anthropic counts input_tokens without the tokens read from the cache."""
    prompt = count_tokens(_prompt_text(body))
    cached = min(fault.cached_tokens, prompt)
    return {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


@bp.post("/messages")
def messages(channel: str):
    if not request.headers.get("x-api-key") and not request.headers.get("Authorization", "").startswith("Bearer "):
        return _error(401, "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return _error(400, "anthropic-version: header is required")
    body = request.get_json(silent=True)
    problem = _invalid(body)
    if problem:
        return _error(400, problem)
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
    answer = _answer(channel, body, fault)
    usage = _usage(body, fault)
    message_id = "msg_" + uuid.uuid4().hex[:24]
    served = echoed(fault, fault.served_model or model)
    if not stream:
        if fault.cut_after is not None:
            return drop_connection()
        payload = {"id": message_id, "type": "message", "role": "assistant", "model": served,
                   "content": [b.whole() for b in answer.blocks], "stop_reason": answer.stop_reason,
                   "stop_sequence": None}
        if not fault.omit_usage:
            payload["usage"] = {**usage, "output_tokens": answer.output_tokens}
        return jsonify(payload)
    return Response(stream_with_context(_events(channel, message_id, served, answer, usage, fault)),
                    mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def _events(channel: str, message_id: str, served: str, answer: _Answer, usage: dict, fault: Fault):
    """The SSE body: message_start, one start/delta.../stop run per block, message_delta, message_stop."""
    message = {"id": message_id, "type": "message", "role": "assistant", "model": served, "content": [],
               "stop_reason": None, "stop_sequence": None}
    if not fault.omit_usage:
        message["usage"] = {**usage, "output_tokens": 1}  # Anthropic's placeholder until message_delta
    yield _event("message_start", {"message": message})
    yield _event("ping", {})
    sent = 0
    for index, block in enumerate(answer.blocks):
        if block.kind == "text":
            start, delta_type, key = {"type": "text", "text": ""}, "text_delta", "text"
        else:
            start = {"type": "tool_use", "id": block.tool_id, "name": block.tool_name, "input": {}}
            delta_type, key = "input_json_delta", "partial_json"
        yield _event("content_block_start", {"index": index, "content_block": start})
        for piece in block.pieces:
            if fault.cut_after is not None and sent >= fault.cut_after:
                if fault.status:
                    message = failure_message(fault, channel)
                    yield _event("error", {"error": anthropic_error(fault.status, message)["error"]})
                else:
                    cut_stream()
                return
            if fault.chunk_delay_ms:
                time.sleep(fault.chunk_delay_ms / 1000)
            yield _event("content_block_delta", {"index": index, "delta": {"type": delta_type, key: piece}})
            sent += 1
        yield _event("content_block_stop", {"index": index})
    end_usage = {} if fault.omit_usage else {"usage": {"output_tokens": answer.output_tokens}}
    yield _event("message_delta", {"delta": {"stop_reason": answer.stop_reason, "stop_sequence": None}, **end_usage})
    yield _event("message_stop", {})
