"""Driving an adapter the way the gateway does, shared by the adapter tests."""
from __future__ import annotations

from functools import partial
from types import ModuleType

import pytest

from app.providers.base import ChunkStream, UpstreamCall, UpstreamError


def drain(stream: ChunkStream, limit: int = 200) -> list[dict]:
    """Read a stream to its end, failing if it never ends."""
    chunks = []
    for chunk in stream.chunks:
        chunks.append(chunk)
        assert len(chunks) <= limit, "stream never ended"
    return chunks


def attempt(adapter: ModuleType, call: UpstreamCall):
    """Run a call the way the gateway does: send, or open a stream and read it to the end."""
    if not call.stream:
        return adapter.send(call)
    stream = adapter.open_stream(call)
    try:
        return drain(stream)
    finally:
        stream.close()


def failure(adapter: ModuleType, call: UpstreamCall) -> UpstreamError:
    """The UpstreamError a call ends in."""
    with pytest.raises(UpstreamError) as caught:
        attempt(adapter, call)
    return caught.value


def bound_to(adapter: ModuleType):
    """attempt and failure for one adapter."""
    return partial(attempt, adapter), partial(failure, adapter)


def read_until_failure(stream: ChunkStream, limit: int = 50) -> tuple[list[dict], UpstreamError]:
    """Read a stream that must break: the chunks delivered before it did, and the error."""
    received: list[dict] = []
    with pytest.raises(UpstreamError) as caught:
        for chunk in stream.chunks:
            received.append(chunk)
            assert len(received) < limit, "stream never broke"
    stream.close()
    return received, caught.value
