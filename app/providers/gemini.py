"""The `gemini` adapter: Google's generateContent API, spoken on behalf of an OpenAI-format request."""
from __future__ import annotations

import itertools
import json
from typing import Iterator
from urllib.parse import quote

import requests

from app.providers.base import (
    ChunkStream, Completion, ErrorClass, USER_AGENT, UpstreamCall, UpstreamError, classify_status,
    first_chunk, iter_json_events, keyless_answers, post_json, read_json,
)
from app.providers.gemini_format import (
    ERROR_INFO, RETRY_INFO, GeminiToOpenAIStream, gemini_response_to_openai, gemini_usage, openai_request_to_gemini,
)
from app.providers.openai_shape import ChunkShaper, conform_completion

API_VERSION = "v1beta"


def _url(call: UpstreamCall) -> str:
    model = quote(call.upstream_model.removeprefix("models/"), safe="-._")
    action = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
    return f"{call.base_url.rstrip('/')}/{API_VERSION}/models/{model}:{action}"


def _headers(call: UpstreamCall) -> dict[str, str]:
    # Built from scratch so no client header travels; the key goes in its header, never in the URL,
    # where proxies and access logs would keep it.
    return {"x-goog-api-key": call.api_key, "Content-Type": "application/json",
            "Accept": "text/event-stream" if call.stream else "application/json", "User-Agent": USER_AGENT}


def _request_body(call: UpstreamCall) -> dict:
    if call.endpoint != "chat":
        raise UpstreamError(ErrorClass.BAD_RESPONSE, f"gemini adapter serves no {call.endpoint}")
    try:
        return openai_request_to_gemini(call.body)
    except ValueError as exc:
        message = str(exc)
        raise UpstreamError(ErrorClass.CLIENT_ERROR, message, 400, client_message=message) from None


def classify_error(status: int, text: str, call: UpstreamCall, retry_after: str | None = None) -> UpstreamError:
    """Classify a Google error envelope by what it says, not only by the HTTP status it came with."""
    error = _google_error(text)
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    if error.get("status") == "RESOURCE_EXHAUSTED":
        status = 429
    elif any(d.get("@type") == ERROR_INFO and d.get("reason") == "API_KEY_INVALID" for d in details):
        status = 401  # Google rejects a bad key with 400 INVALID_ARGUMENT; it is the channel's fault, not the client's
    delay = next((d.get("retryDelay") for d in details if d.get("@type") == RETRY_INFO), None)
    if retry_after is None and isinstance(delay, str):
        retry_after = delay.removesuffix("s")  # a protobuf Duration such as "37s" or "1.5s"
    return classify_status(status, text, call, retry_after)


def _google_error(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _error_in_body(data: dict, call: UpstreamCall) -> UpstreamError:
    """An error envelope that arrived inside a 200 answer or as a stream event."""
    code = data["error"].get("code") if isinstance(data["error"], dict) else None
    return classify_error(code if isinstance(code, int) and code >= 400 else 500, json.dumps(data), call)


def _post(call: UpstreamCall, body: dict) -> requests.Response:
    return post_json(call, _url(call), _headers(call), body, classify=classify_error)


@keyless_answers
def send(call: UpstreamCall) -> Completion:
    """Make a non-streaming call and return the answer translated to OpenAI's format."""
    response = _post(call, _request_body(call))
    data = read_json(response)
    if "error" in data:
        raise _error_in_body(data, call)
    meta = data.get("usageMetadata")
    try:
        body = gemini_response_to_openai(data, call.upstream_model)
        usage = gemini_usage(meta) if isinstance(meta, dict) else None
    except ValueError as exc:
        raise UpstreamError(ErrorClass.BAD_RESPONSE, str(exc), response.status_code) from None
    return Completion(body=conform_completion(body, call.upstream_model), usage=usage,
                      served_model=data.get("modelVersion"))


@keyless_answers
def open_stream(call: UpstreamCall) -> ChunkStream:
    """Start a streaming call; return once the first chunk has arrived, so failures before it fall back."""
    response = _post(call, _request_body(call))
    stream = ChunkStream(chunks=iter(()), response=response)
    chunks = _chunks(stream, call)
    first = first_chunk(response, chunks)
    stream.chunks = itertools.chain([first], chunks)
    return stream


def _chunks(stream: ChunkStream, call: UpstreamCall) -> Iterator[dict]:
    """OpenAI chunks for Gemini's events, noting served model and delivered text on the way."""
    translator = GeminiToOpenAIStream(call.upstream_model)
    shape = ChunkShaper(call.upstream_model)
    received = 0
    for event in _events(stream.response, call):
        received += 1
        stream.served_model = stream.served_model or event.get("modelVersion")
        try:
            chunks = translator.feed(event)
        except ValueError as exc:
            raise UpstreamError(ErrorClass.BAD_RESPONSE, str(exc)) from None
        for chunk in map(shape, chunks):
            stream.delivered_text.extend(c["delta"]["content"] for c in chunk["choices"] if c["delta"].get("content"))
            yield chunk
    if received == 0:
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "answer is not an event stream")
    if translator.finish_reason is None:
        # Gemini sends no [DONE]: a stream that stops before a finishReason was cut.
        raise UpstreamError(ErrorClass.CONNECT, "stream ended before its finishReason")
    # Only a finished stream's usage is the total; a cut one is charged from the delivered text.
    stream.usage = translator.usage
    yield from map(shape, translator.finish())


def _events(response: requests.Response, call: UpstreamCall) -> Iterator[dict]:
    """Gemini's streamed GenerateContentResponses, raising UpstreamError on a broken stream."""
    for _event, event in iter_json_events(response, call):
        if not isinstance(event, dict):
            raise UpstreamError(ErrorClass.BAD_RESPONSE, "stream event is not an object")
        if "error" in event:
            raise _error_in_body(event, call)
        yield event
