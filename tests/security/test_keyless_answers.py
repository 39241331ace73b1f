"""keyless_answers: whatever an adapter returns or raises leaves it without the channel's key."""
from __future__ import annotations

import base64

import pytest

from app.providers.base import (
    ChunkStream, Completion, ErrorClass, UpstreamCall, UpstreamError, keyless_answers,
)
from tests.security.key_forms import leaks

KEY = "Wm4_Tq9-Ys2Kd7Lx3Pv8Hc"
ECHO = base64.b64encode(KEY.encode()).decode()
CALL = UpstreamCall(channel="c", provider="openai", base_url="http://127.0.0.1:9/v1", api_key=KEY, timeout_s=1,
                    upstream_model="mapped", endpoint="chat", body={})


class _Response:
    def close(self) -> None:
        pass


def _chunks():
    yield {"id": f"id-{KEY}", "model": f"m {ECHO}", "system_fingerprint": KEY, "choices": []}
    raise UpstreamError(ErrorClass.UPSTREAM_5XX, f"error event: {' '.join(KEY)}")


def test_a_completion_has_no_key_in_its_names():
    send = keyless_answers(lambda call: Completion(
        body={"id": KEY, "model": ECHO, "system_fingerprint": f"fp {KEY}", "choices": []}, usage=None,
        served_model=f"gpt {KEY[2:12]}"))
    completion = send(CALL)
    assert leaks(repr(completion), KEY) == []
    assert completion.body["model"] == "[redacted]" and completion.served_model == "gpt [redacted]"


def test_a_stream_has_no_key_in_its_chunks_served_model_or_error():
    stream = keyless_answers(lambda call: ChunkStream(chunks=_chunks(), response=_Response(), served_model=ECHO))(CALL)
    assert stream.served_model == "[redacted]"
    chunks = []
    with pytest.raises(UpstreamError) as caught:
        for chunk in stream.chunks:
            chunks.append(chunk)
    assert chunks[0]["model"] == "m [redacted]"
    assert leaks(repr(chunks) + caught.value.detail + str(caught.value), KEY) == []


def test_an_error_keeps_its_class_and_status_but_not_the_key():
    def fail(call):
        raise UpstreamError(ErrorClass.CLIENT_ERROR, f"400: bad {KEY}", 400, client_message=f"bad {ECHO}" * 200)
    with pytest.raises(UpstreamError) as caught:
        keyless_answers(fail)(CALL)
    error = caught.value
    assert (error.error_class, error.http_status) == (ErrorClass.CLIENT_ERROR, 400)
    assert leaks(error.detail + error.client_message + str(error), KEY) == []
    assert len(error.client_message) <= 1000
