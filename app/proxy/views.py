"""Views of /v1. Bearer keys only: this blueprint never reads the session cookie."""
from __future__ import annotations

import json
from typing import Iterator

from flask import Response, current_app, jsonify, request, stream_with_context
from werkzeug.exceptions import RequestEntityTooLarge

from app.gateway.catalog import models_for
from app.gateway.errors import GatewayError, invalid_request
from app.gateway.principal import Principal, authenticate
from app.gateway.receipts import find_receipt, receipt_json
from app.gateway.service import Served, record_rejection, serve
from app.gateway.wallets import wallets_json
from app.providers.anthropic_format import (
    OpenAIToAnthropicStream, anthropic_error, anthropic_request_to_openai, openai_response_to_anthropic,
)
from app.proxy import bp

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def error_response(error: GatewayError, anthropic: bool = False) -> Response:
    """OpenAI's error envelope (or Anthropic's, for Claude clients), with Waybill headers and retry hints."""
    if anthropic:
        body = anthropic_error(error.status, error.message)
    else:
        body = {"error": {"message": error.message, "type": error.error_type, "code": error.code}}
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    if not error.retryable:
        response.headers["x-should-retry"] = "false"
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@bp.errorhandler(GatewayError)
def on_gateway_error(error: GatewayError):
    return error_response(error, anthropic=request.endpoint == "proxy.messages")


@bp.errorhandler(Exception)
def on_unexpected_error(error: Exception):
    """Anything else still answers in OpenAI's envelope; the details go to the log only."""
    from werkzeug.exceptions import HTTPException
    if isinstance(error, HTTPException):
        return error_response(GatewayError(error.code or 500, "invalid_request" if (error.code or 500) < 500
                                           else "internal_error", error.description or error.name))
    current_app.logger.exception("unexpected error in /v1")
    return error_response(GatewayError(500, "internal_error", "Waybill hit an internal error"))


def bearer_key() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def anthropic_key() -> str | None:
    """Claude clients send x-api-key; Bearer works too."""
    return request.headers.get("x-api-key") or bearer_key()


def _principal() -> Principal:
    return authenticate(bearer_key())


def _json_body(principal: Principal, endpoint: str) -> object:
    try:
        return request.get_json(force=True, silent=True)
    except RequestEntityTooLarge:
        raise record_rejection(principal, endpoint, GatewayError(413, "request_too_large", "the body is too large")) from None


def openai_sse(events: Iterator[dict]) -> Iterator[bytes]:
    """OpenAI's stream framing: a data line per chunk, then [DONE] unless it ended in an error."""
    try:
        for event in events:
            yield b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
            if "error" in event:
                return
        yield b"data: [DONE]\n\n"
    finally:
        events.close()  # a client hang-up reaches the gateway now, not at garbage collection


def _answer(result) -> Response:
    if isinstance(result, Served):
        response = jsonify(result.body)
        response.headers.update(result.headers)
        return response
    return Response(stream_with_context(openai_sse(result.events)), mimetype="text/event-stream",
                    headers={**SSE_HEADERS, **result.headers})


@bp.post("/chat/completions")
def chat_completions():
    principal = _principal()
    return _answer(serve(principal, "chat", _json_body(principal, "chat")))


@bp.post("/embeddings")
def embeddings():
    principal = _principal()
    return _answer(serve(principal, "embeddings", _json_body(principal, "embeddings")))


@bp.get("/models")
def models():
    return jsonify(object="list", data=models_for(_principal()))


@bp.get("/receipts/<receipt_id>")
def receipt(receipt_id: str):
    found = find_receipt(_principal().user_id, receipt_id)
    if found is None:
        raise GatewayError(404, "receipt_not_found", f"no receipt {receipt_id!r}")
    return jsonify(receipt_json(found))


@bp.get("/wallets")
def wallets():
    return jsonify(object="list", data=wallets_json(_principal().user_id))


def anthropic_sse(events: Iterator[dict], requested_model: str) -> Iterator[bytes]:
    """Anthropic's stream framing: named events translated from the gateway's chunks."""
    translator = OpenAIToAnthropicStream(requested_model)
    try:
        for chunk in events:
            if "error" in chunk:
                yield _named_event("error", anthropic_error(502, chunk["error"]["message"]))
                return
            for name, data in translator.feed(chunk):
                yield _named_event(name, data)
        for name, data in translator.finish():
            yield _named_event(name, data)
    finally:
        events.close()


def _named_event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


@bp.post("/messages")
def messages():
    principal = authenticate(anthropic_key())
    body = _json_body(principal, "messages")
    try:
        chat_body = anthropic_request_to_openai(body)
    except ValueError as exc:
        raise record_rejection(principal, "messages", invalid_request(str(exc))) from None
    result = serve(principal, "messages", chat_body)
    if isinstance(result, Served):
        response = jsonify(openai_response_to_anthropic(result.body, chat_body["model"]))
        response.headers.update(result.headers)
        return response
    return Response(stream_with_context(anthropic_sse(result.events, chat_body["model"])),
                    mimetype="text/event-stream", headers={**SSE_HEADERS, **result.headers})
