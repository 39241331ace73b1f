"""The `anthropic` adapter: OpenAI chat bodies sent to Anthropic's Messages API and answered in OpenAI's format."""
from __future__ import annotations

from typing import Iterator

import requests

from app.providers.anthropic_format import (
    AnthropicToOpenAIStream, anthropic_response_to_openai, anthropic_usage, openai_request_to_anthropic,
)
from app.providers.base import (
    ChunkStream, Completion, ErrorClass, USER_AGENT, UpstreamCall, UpstreamError, first_chunk,
    iter_json_events, keyless_answers, post_json, read_json,
)
from app.providers.openai_shape import ChunkShaper, conform_completion

API_VERSION = "2023-06-01"


def _headers(call: UpstreamCall) -> dict[str, str]:
    # Built from scratch: the client's own key, User-Agent and X-Stainless-* never travel upstream.
    return {"x-api-key": call.api_key, "anthropic-version": API_VERSION, "Content-Type": "application/json",
            "Accept": "text/event-stream" if call.stream else "application/json", "User-Agent": USER_AGENT}


def _body(call: UpstreamCall) -> dict:
    # Anthropic requires max_tokens; without the client's, the model's max output (set by the gateway) is used.
    try:
        body = openai_request_to_anthropic(call.body, call.upstream_model, call.default_max_tokens)
    except ValueError as exc:
        message = str(exc)
        raise UpstreamError(ErrorClass.CLIENT_ERROR, message, 400, client_message=message) from None
    body.pop("stream", None)
    if call.stream:
        body["stream"] = True
    return body


def _post(call: UpstreamCall) -> requests.Response:
    if call.endpoint != "chat":
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "anthropic serves no embeddings")
    body = _body(call)
    return post_json(call, call.base_url.rstrip("/") + "/v1/messages", _headers(call), body)


@keyless_answers
def send(call: UpstreamCall) -> Completion:
    """Make a non-streaming call and return the answer as an OpenAI chat.completion."""
    response = _post(call)
    data = read_json(response)
    if not isinstance(data, dict) or data.get("type") != "message" or not isinstance(data.get("content"), list):
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "answer is not a message with a content list",
                            response.status_code)
    try:
        body = anthropic_response_to_openai(data)
    except (AttributeError, TypeError):
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "message has malformed content", response.status_code) from None
    return Completion(body=conform_completion(body, call.upstream_model), usage=anthropic_usage(data.get("usage")),
                      served_model=data.get("model"))


@keyless_answers
def open_stream(call: UpstreamCall) -> ChunkStream:
    """Start a streaming call; return once the first chunk has arrived, so failures before it fall back."""
    response = _post(call)
    translator = AnthropicToOpenAIStream()
    chunks = _chunks(response, call, translator)
    stream = ChunkStream(chunks=iter(()), response=response)
    first = first_chunk(response, chunks)
    stream.chunks = _tracked(stream, translator, first, chunks, ChunkShaper(call.upstream_model))
    return stream


def _tracked(stream: ChunkStream, translator: AnthropicToOpenAIStream, first: dict,
             rest: Iterator[dict], shape: ChunkShaper) -> Iterator[dict]:
    """Yield conforming chunks while noting the served model, delivered text and usage."""
    stream.served_model = translator.model
    yield shape(first)
    for chunk in rest:
        stream.served_model = translator.model
        # Set as soon as message_delta reported it, so a cut before message_stop still bills reported usage.
        stream.usage = translator.usage
        chunk = shape(chunk)
        for choice in chunk["choices"]:
            content = choice["delta"].get("content")
            if content:
                stream.delivered_text.append(content)
        yield chunk


def _chunks(response: requests.Response, call: UpstreamCall, translator: AnthropicToOpenAIStream) -> Iterator[dict]:
    """Translate Anthropic's SSE into OpenAI chunks, raising UpstreamError on a broken stream."""
    received = 0
    for event, payload in iter_json_events(response, call):
        received += 1
        try:
            chunks = translator.feed(event, payload)
        except (AttributeError, TypeError):  # a field of the wrong JSON type
            raise UpstreamError(ErrorClass.BAD_RESPONSE, f"malformed {event or 'stream'} event") from None
        yield from chunks
        if translator.finished:
            return
    if received == 0:
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "answer is not an event stream")
    raise UpstreamError(ErrorClass.CONNECT, "stream ended without message_stop")
