"""Views of the API. Keys only (Bearer, x-api-key, x-goog-api-key): this blueprint never reads the session cookie."""
from __future__ import annotations

from functools import wraps
from typing import Callable, TypeVar

from flask import Response, current_app, jsonify, request, stream_with_context
from werkzeug.exceptions import HTTPException

from app.gateway.catalog import count_prompt_tokens, model_for, models_for, openai_model
from app.gateway.errors import GatewayError, invalid_request
from app.gateway.principal import Principal, authenticate
from app.gateway.receipts import find_receipt, receipt_json
from app.gateway.service import Served, StreamServed, record_rejection, serve
from app.gateway.wallets import wallets_json
from app.proxy import bp
from app.proxy.clients.anthropic import anthropic_request_to_openai, openai_response_to_anthropic
from app.proxy.clients.gemini import gemini_model, gemini_request_to_openai, openai_response_to_gemini
from app.proxy.envelopes import api_error_response, dialect, error_response
from app.proxy.limits import read_body, take_slot
from app.proxy.streams import AnthropicFraming, Framing, GeminiFraming, OpenAIFraming, framed

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
GEMINI_PATH = "/<any(v1, v1beta):version>/models/<path:model>"
T = TypeVar("T")


@bp.errorhandler(GatewayError)
def on_gateway_error(error: GatewayError):
    return error_response(error)


@bp.errorhandler(Exception)
def on_unexpected_error(error: Exception):
    """Anything else still answers in the caller's envelope; the details go to the log only.

    The common HTTP errors (400, 404, 405, 413, 500) reach app/errors.py first, which answers the same way.
    """
    if isinstance(error, HTTPException):
        status = error.code or 500
        return api_error_response(status, "internal_error" if status >= 500 else "invalid_request",
                                  error.description or error.name)
    current_app.logger.exception("unexpected error in the API")
    return api_error_response(500, "internal_error", "Waybill hit an internal error")


def _principal() -> Principal:
    """The caller, by the key header of the API it speaks; Bearer works for all three."""
    header = request.headers.get("Authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
    own_header = {"anthropic": "x-api-key", "google": "x-goog-api-key"}.get(dialect() or "openai")
    return authenticate((own_header and request.headers.get(own_header)) or bearer)


def _body() -> object:
    """The JSON body, None when it is not JSON; 408 when it arrives slower than the read deadline."""
    read_body()
    try:
        return request.get_json(force=True, silent=True)
    except RecursionError:  # the JSON parser recurses; silent=True only covers ValueError
        raise invalid_request("the body is nested too deeply") from None


def _translated(translate: Callable[..., dict], *args) -> dict:
    """The client's body as an OpenAI chat body; 400 invalid_request when it cannot be one."""
    try:
        return translate(_body(), *args)
    except ValueError as exc:
        raise invalid_request(str(exc)) from None


def _receipted(principal: Principal, endpoint: str | None, read: Callable[[], T]) -> T:
    """read(), with a receipt for a request refused before the gateway could see it; none when endpoint is None."""
    try:
        return read()
    except GatewayError as error:
        if endpoint is None:
            raise
        raise record_rejection(principal, endpoint, error) from None


def _in_flight(endpoint: str | None) -> Callable:
    """Run a view that reads a body as the key's caller, in one of the key's in-flight slots; 429 when none is free."""
    # The slot is taken before the body is read, so slow bodies count too. A refusal is receipted under
    # `endpoint`, unless it is None (a view that keeps no receipts).
    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def held(**url_values) -> Response:
            principal = _principal()
            slot = _receipted(principal, endpoint, lambda: take_slot(principal.api_key_id))
            return slot.around(lambda: view(principal, **url_values))
        return held
    return decorate


def _answer(result: Served | StreamServed, to_json: Callable[[dict], dict], framing: Framing) -> Response:
    if isinstance(result, Served):
        response = jsonify(to_json(result.body))
        response.headers.update(result.headers)
        return response
    return Response(stream_with_context(framed(result.events, framing)), mimetype="text/event-stream",
                    headers={**SSE_HEADERS, **result.headers})


def _as_is(body: dict) -> dict:
    return body


@bp.post("/v1/chat/completions")
@_in_flight("chat")
def chat_completions(principal: Principal):
    return _answer(serve(principal, "chat", _receipted(principal, "chat", _body)), _as_is, OpenAIFraming())


@bp.post("/v1/embeddings")
@_in_flight("embeddings")
def embeddings(principal: Principal):
    return _answer(serve(principal, "embeddings", _receipted(principal, "embeddings", _body)), _as_is, OpenAIFraming())


@bp.get("/v1/models")
@bp.get("/v1beta/models")
def models():
    listed = models_for(_principal())
    if dialect() == "google":
        return jsonify(models=[gemini_model(model) for model in listed])
    return jsonify(object="list", data=[openai_model(model) for model in listed])


@bp.get("/v1/models/<path:model_id>")
@bp.get("/v1beta/models/<path:model_id>")
def model(model_id: str):
    found = model_for(_principal(), model_id)
    return jsonify(gemini_model(found) if dialect() == "google" else openai_model(found))


@bp.get("/v1/receipts/<receipt_id>")
def receipt(receipt_id: str):
    found = find_receipt(_principal().user_id, receipt_id)
    if found is None:
        raise GatewayError(404, "receipt_not_found", f"no receipt {receipt_id!r}")
    return jsonify(receipt_json(found))


@bp.get("/v1/wallets")
def wallets():
    return jsonify(object="list", data=wallets_json(_principal().user_id))


@bp.post("/v1/messages")
@_in_flight("messages")
def messages(principal: Principal):
    chat_body = _receipted(principal, "messages", lambda: _translated(anthropic_request_to_openai))
    model_id = chat_body["model"]
    return _answer(serve(principal, "messages", chat_body),
                   lambda body: openai_response_to_anthropic(body, model_id), AnthropicFraming(model_id))


@bp.post("/v1/messages/count_tokens")
@_in_flight(None)
def count_tokens(principal: Principal):
    """Anthropic's token count: an estimate only, so no hold, no charge and no receipt."""
    chat_body = _translated(anthropic_request_to_openai, True)
    return jsonify(input_tokens=count_prompt_tokens(principal, chat_body))


@bp.post(GEMINI_PATH + ":generateContent")
@_in_flight("gemini")
def generate_content(principal: Principal, version: str, model: str):
    return _gemini(principal, model, stream=False)


@bp.post(GEMINI_PATH + ":streamGenerateContent")
@_in_flight("gemini")
def stream_generate_content(principal: Principal, version: str, model: str):
    """Streams as server-sent events whatever `alt` says: that is the form google-genai asks for."""
    return _gemini(principal, model, stream=True)


def _gemini(principal: Principal, model_id: str, stream: bool) -> Response:
    chat_body = _receipted(principal, "gemini", lambda: _translated(gemini_request_to_openai, model_id, stream))
    return _answer(serve(principal, "gemini", chat_body),
                   lambda body: openai_response_to_gemini(body, model_id), GeminiFraming(model_id))
