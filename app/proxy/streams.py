"""The gateway's stream of OpenAI chunks, framed as the server-sent events of the API the client speaks."""
from __future__ import annotations

import json
from typing import Generator, Iterator, Protocol

from app.providers.anthropic_format import anthropic_error
from app.providers.gemini_format import google_error
from app.proxy.clients.anthropic import OpenAIToAnthropicStream
from app.proxy.clients.gemini import OpenAIToGeminiStream
from app.proxy.envelopes import openai_error

CUT_STATUS = 502  # a stream cut mid-way failed upstream, after Waybill had answered 200


class Framing(Protocol):
    """How one client API frames chunks, the stream's end, and a failure that cuts it."""

    def feed(self, chunk: dict) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...

    def error(self, error: dict) -> bytes: ...


def framed(events: Generator[dict, None, None], framing: Framing) -> Iterator[bytes]:
    """The client's events for the gateway's chunks; an {"error": …} chunk ends the stream with the error."""
    try:
        for chunk in events:
            if "error" in chunk:
                yield framing.error(chunk["error"])
                return
            yield from framing.feed(chunk)
        yield from framing.finish()
    finally:
        events.close()  # a client hang-up reaches the gateway now, not at garbage collection


def _data(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class OpenAIFraming:
    """OpenAI's: a data line per chunk, then [DONE] unless the stream ended in an error."""

    def feed(self, chunk: dict) -> list[bytes]:
        return [_data(chunk)]

    def finish(self) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def error(self, error: dict) -> bytes:
        return _data(openai_error(error.get("message", ""), error.get("type", "api_error"), error.get("code"),
                                  error.get("param")))


class AnthropicFraming:
    """Anthropic's: named events translated from the chunks."""

    def __init__(self, requested_model: str) -> None:
        self.translator = OpenAIToAnthropicStream(requested_model)

    def feed(self, chunk: dict) -> list[bytes]:
        return [_named(name, data) for name, data in self.translator.feed(chunk)]

    def finish(self) -> list[bytes]:
        return [_named(name, data) for name, data in self.translator.finish()]

    def error(self, error: dict) -> bytes:
        return _named("error", anthropic_error(CUT_STATUS, error.get("message", "")))


def _named(name: str, data: dict) -> bytes:
    return f"event: {name}\n".encode() + _data(data)


class GeminiFraming:
    """Google's (alt=sse): a GenerateContentResponse per data line; an error is Google's envelope."""

    def __init__(self, requested_model: str) -> None:
        self.translator = OpenAIToGeminiStream(requested_model)

    def feed(self, chunk: dict) -> list[bytes]:
        return [_data(response) for response in self.translator.feed(chunk)]

    def finish(self) -> list[bytes]:
        return [_data(response) for response in self.translator.finish()]

    def error(self, error: dict) -> bytes:
        return _data(google_error(CUT_STATUS, error.get("message", ""), reason=error.get("code")))
