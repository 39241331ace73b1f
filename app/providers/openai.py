"""The `openai` and `openai-compatible` adapters: OpenAI's wire format, passed through."""
from __future__ import annotations

from typing import Iterator

import requests

from app.providers.base import (
    ChunkStream, Completion, ErrorClass, TokenUsage, USER_AGENT, UpstreamCall, UpstreamError, first_chunk,
    iter_json_events, keyless_answers, post_json, read_json,
)
from app.providers.openai_shape import ChunkShaper, conform_completion, conform_embeddings

PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings"}


def _headers(call: UpstreamCall) -> dict[str, str]:
    # Built from scratch: the client's own key, User-Agent and X-Stainless-* never travel upstream.
    return {"Authorization": f"Bearer {call.api_key}", "Content-Type": "application/json",
            "Accept": "text/event-stream" if call.stream else "application/json", "User-Agent": USER_AGENT}


def _body(call: UpstreamCall) -> dict:
    body = {**call.body, "model": call.upstream_model}
    if call.stream:
        # Always ask for usage so the charge is exact; the gateway drops the chunk if unwanted.
        body["stream"] = True
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body


def _post(call: UpstreamCall) -> requests.Response:
    return post_json(call, call.base_url.rstrip("/") + PATHS[call.endpoint], _headers(call), _body(call))


def parse_usage(data: dict | None) -> TokenUsage | None:
    """OpenAI usage, with cached tokens from prompt_tokens_details; None when absent."""
    if not isinstance(data, dict):
        return None
    prompt, completion = data.get("prompt_tokens"), data.get("completion_tokens", 0)
    details = data.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0 if isinstance(details, dict) else 0
    if not all(isinstance(v, int) for v in (prompt, completion, cached)):
        return None
    if min(prompt, completion, cached) < 0:
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "upstream reported negative usage")
    return TokenUsage(prompt, completion, cached)


@keyless_answers
def send(call: UpstreamCall) -> Completion:
    """Make a non-streaming call and return the whole answer."""
    response = _post(call)
    data = read_json(response)
    expected = "choices" if call.endpoint == "chat" else "data"
    if not isinstance(data, dict) or not isinstance(data.get(expected), list):
        raise UpstreamError(ErrorClass.BAD_RESPONSE, f"answer has no {expected!r} list", response.status_code)
    conform = conform_completion if call.endpoint == "chat" else conform_embeddings
    return Completion(body=conform(data, call.upstream_model), usage=parse_usage(data.get("usage")),
                      served_model=data.get("model"))


@keyless_answers
def open_stream(call: UpstreamCall) -> ChunkStream:
    """Start a streaming call; return once the first chunk has arrived, so failures before it fall back."""
    response = _post(call)
    events = _chunks(response, call)
    stream = ChunkStream(chunks=iter(()), response=response)
    first = first_chunk(response, events)
    stream.served_model = first.get("model") or None  # known before the first byte, for the headers
    stream.chunks = _tracked(stream, first, events, ChunkShaper(call.upstream_model))
    return stream


def _tracked(stream: ChunkStream, first: dict, rest: Iterator[dict], shape: ChunkShaper) -> Iterator[dict]:
    """Yield conforming chunks while noting the served model, delivered text and usage."""
    for chunk in _prepend(first, rest):
        stream.served_model = stream.served_model or chunk.get("model")
        if chunk.get("usage"):
            stream.usage = parse_usage(chunk["usage"])
        chunk = shape(chunk)
        for choice in chunk["choices"]:
            content = choice["delta"].get("content")
            if content:
                stream.delivered_text.append(content)
        yield chunk


def _prepend(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest


def _chunks(response: requests.Response, call: UpstreamCall) -> Iterator[dict]:
    """Parse OpenAI's SSE into chunk dicts, raising UpstreamError on a broken stream."""
    received = 0
    for _event, chunk in iter_json_events(response, call):
        if chunk == "[DONE]":
            return
        if "error" in chunk:
            message = chunk["error"].get("message") if isinstance(chunk["error"], dict) else chunk["error"]
            raise UpstreamError(ErrorClass.UPSTREAM_5XX, f"error event: {message}")  # keyless_answers redacts it
        received += 1
        yield chunk
    if received == 0:
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "answer is not an event stream")
    raise UpstreamError(ErrorClass.CONNECT, "stream ended without [DONE]")
