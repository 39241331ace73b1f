"""The gateway's OpenAI chunks as the inbound stream translators receive them, shared by their tests."""
from __future__ import annotations


def openai_chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    """One chat.completion.chunk: a delta of choice 0 (with its finish reason), or only usage."""
    chunk = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
             "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        chunk["usage"] = usage
    return chunk
