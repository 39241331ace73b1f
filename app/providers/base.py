"""What every adapter takes and returns, the error classes, and pooled HTTP sessions."""
from __future__ import annotations

import enum
import functools
import json
import threading
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from dataclasses import dataclass, field
from typing import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError

from app.providers.redact import redact

CONNECT_TIMEOUT_S = 5.0
POOL_SIZE = 1024
# Length caps of upstream text: an attempt's detail, a message passed on to the client, a model name.
DETAIL_LIMIT = 300
MESSAGE_LIMIT = 1000
NAME_LIMIT = 200
NAMES = ("id", "system_fingerprint")  # besides the model: the short strings of an answer an upstream chooses


class ErrorClass(enum.StrEnum):
    """The receipt's error classes for upstream failures."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    UPSTREAM_5XX = "upstream_5xx"
    RATE_LIMITED = "rate_limited"
    KEY_REJECTED = "key_rejected"
    MODEL_MISMATCH = "model_mismatch"
    BAD_RESPONSE = "bad_response"
    CLIENT_ERROR = "client_error"  # the request itself was bad: never fall back


@dataclass(frozen=True)
class UpstreamCall:
    """One try of one channel: where, with which key, and the OpenAI-format body to send."""

    channel: str
    provider: str
    base_url: str
    api_key: str
    timeout_s: float
    upstream_model: str
    endpoint: str          # "chat" or "embeddings"
    body: dict
    stream: bool = False
    default_max_tokens: int = 4096  # for providers that require max_tokens: the model's max output


@dataclass
class TokenUsage:
    """Usage as an upstream reported it, in OpenAI's terms (prompt includes cached tokens)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


class UpstreamError(Exception):
    """A failed try, classified; `detail` is already redacted."""

    def __init__(self, error_class: str, detail: str, http_status: int | None = None,
                 retry_after: float | None = None, client_message: str | None = None):
        super().__init__(detail)
        self.error_class = error_class
        self.detail = detail
        self.http_status = http_status
        self.retry_after = retry_after
        self.client_message = client_message

    @property
    def falls_back(self) -> bool:
        """Client errors are returned as they are; everything else tries the next step."""
        return self.error_class != ErrorClass.CLIENT_ERROR


@dataclass
class Completion:
    """A whole (non-streamed) answer in OpenAI's response format."""

    body: dict
    usage: TokenUsage | None
    served_model: str | None


@dataclass
class ChunkStream:
    """A streamed answer: OpenAI chunk dicts, with usage once the upstream reported it."""

    chunks: Iterator[dict]
    response: requests.Response
    usage: TokenUsage | None = None
    served_model: str | None = None
    delivered_text: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.response.close()


class NoRedirectSession(requests.Session):
    """A session that follows no redirect, even for a call that forgets allow_redirects=False."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def session_for(channel: str, base_url: str) -> requests.Session:
    """A pooled keep-alive session per channel and base URL."""
    key = f"{channel} {base_url}"
    session = _sessions.get(key)
    if session is None:
        with _sessions_lock:
            session = _sessions.get(key)
            if session is None:
                session = NoRedirectSession()
                session.trust_env = False  # never route upstream calls through ambient proxies
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                _sessions[key] = session
    return session


def timeouts(call: UpstreamCall) -> tuple[float, float]:
    return (min(CONNECT_TIMEOUT_S, call.timeout_s), call.timeout_s)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def classify_status(status: int, text: str, call: UpstreamCall, retry_after: str | None = None) -> UpstreamError:
    """Turn an upstream HTTP error into an UpstreamError with its class."""
    message = _error_message(text)
    detail = keyless(f"{status}: {message}", call)
    if status in (400, 413, 422):
        return UpstreamError(ErrorClass.CLIENT_ERROR, detail, status,
                             client_message=keyless(message, call, MESSAGE_LIMIT))
    if status == 429:
        return UpstreamError(ErrorClass.RATE_LIMITED, detail, status, parse_retry_after(retry_after))
    if status in (401, 403):
        return UpstreamError(ErrorClass.KEY_REJECTED, detail, status)
    if status == 404:
        return UpstreamError(ErrorClass.MODEL_MISMATCH, detail, status)
    if status >= 500:
        return UpstreamError(ErrorClass.UPSTREAM_5XX, detail, status)
    return UpstreamError(ErrorClass.BAD_RESPONSE, detail, status)


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except ValueError:
        pass
    return text.strip() or "no body"


def transport_error(exc: requests.RequestException, call: UpstreamCall) -> UpstreamError:
    """Classify a failure below HTTP: timeouts and connection errors."""
    if isinstance(exc, (requests.ReadTimeout,)):
        return UpstreamError(ErrorClass.TIMEOUT, f"no answer within {call.timeout_s:g}s")
    if isinstance(exc, requests.ConnectTimeout):
        return UpstreamError(ErrorClass.TIMEOUT, f"connect timed out after {timeouts(call)[0]:g}s")
    if any(isinstance(arg, ReadTimeoutError) for arg in exc.args):
        # requests wraps a read timeout inside a streamed body as a ConnectionError
        return UpstreamError(ErrorClass.TIMEOUT, f"no data within {call.timeout_s:g}s")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return UpstreamError(ErrorClass.CONNECT, "connection dropped mid-response")
    return UpstreamError(ErrorClass.CONNECT, keyless(f"connection failed: {type(exc).__name__}", call))


def iter_sse(response: requests.Response) -> Iterator[tuple[str | None, str]]:
    """Yield (event, data) pairs from a server-sent event stream as bytes arrive."""
    buffer = b""
    for piece in response.iter_content(chunk_size=None):
        buffer += piece
        while True:
            end = _event_end(buffer)
            if end is None:
                break
            raw, buffer = buffer[:end[0]], buffer[end[1]:]
            event, data_lines = None, []
            for line in raw.decode("utf-8", errors="replace").splitlines():
                if line.startswith("data:"):
                    data_lines.append(line[5:].lstrip(" "))
                elif line.startswith("event:"):
                    event = line[6:].strip()
            if data_lines or event:
                yield event, "\n".join(data_lines)


def iter_json_events(response: requests.Response, call: UpstreamCall) -> Iterator[tuple[str | None, dict | str]]:
    """(event name, JSON object) per server-sent event; OpenAI's `[DONE]` passes through as text."""
    try:
        for event, data in iter_sse(response):
            if data == "[DONE]":
                yield event, data
                continue
            try:
                payload = json.loads(data)
            except ValueError:
                raise UpstreamError(ErrorClass.BAD_RESPONSE, "stream event is not JSON") from None
            if not isinstance(payload, dict):
                raise UpstreamError(ErrorClass.BAD_RESPONSE, "stream event is not an object")
            yield event, payload
    except requests.RequestException as exc:
        raise transport_error(exc, call) from None


def _event_end(buffer: bytes) -> tuple[int, int] | None:
    """Start and end of the first event separator in buffer, if any."""
    found = [(i, i + len(sep)) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep)) != -1]
    return min(found) if found else None


USER_AGENT = "waybill/0.1"


def post_json(call: UpstreamCall, url: str, headers: dict[str, str], body: dict,
              classify=classify_status) -> requests.Response:
    """POST a JSON body upstream; raise a classified UpstreamError for transport or HTTP failures."""
    try:
        # A redirect is never followed: the key would travel to wherever the Location points.
        response = session_for(call.channel, call.base_url).post(
            url, data=json.dumps(body), headers=headers, timeout=timeouts(call), stream=call.stream,
            allow_redirects=False)
    except requests.RequestException as exc:
        raise transport_error(exc, call) from None
    if 300 <= response.status_code < 400:
        response.close()
        raise UpstreamError(ErrorClass.BAD_RESPONSE, f"{response.status_code}: the upstream redirected; "
                            "Waybill does not follow upstream redirects", response.status_code)
    if response.status_code >= 400:
        try:
            text = response.text
        except requests.RequestException:
            text = ""
        response.close()
        raise classify(response.status_code, text, call, response.headers.get("Retry-After"))
    return response


def first_chunk(response: requests.Response, chunks: Iterator[dict]) -> dict:
    """Wait for a stream's first chunk: until it arrives a failure may still fall back."""
    try:
        return next(chunks)
    except StopIteration:
        response.close()
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "stream ended before its first chunk") from None
    except UpstreamError:
        response.close()
        raise


def read_json(response: requests.Response) -> dict:
    """The JSON object of a whole answer, or a bad_response UpstreamError."""
    try:
        data = response.json()
    except (ValueError, requests.RequestException):
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "answer is not JSON", response.status_code) from None
    if not isinstance(data, dict):
        raise UpstreamError(ErrorClass.BAD_RESPONSE, "answer is not a JSON object", response.status_code)
    return data


def keyless(text: object, call: UpstreamCall, limit: int = DETAIL_LIMIT) -> str:
    """Upstream text fit to store or pass on: the channel's key gone in every form, the length capped."""
    return redact(str(text), call.api_key, limit=limit)


def keyless_name(name: object, call: UpstreamCall) -> str | None:
    """A name an upstream reported (model, id), without the channel's key; None when it is not a name."""
    return _keyless_name(name, call.api_key) if isinstance(name, str) and name else None


@functools.lru_cache(maxsize=1024)
def _keyless_name(name: str, api_key: str) -> str:
    # Cached: a stream repeats the same model and id in every chunk.
    return redact(name, api_key, limit=NAME_LIMIT)


def keyless_answers(adapter_call):
    """Make an adapter's send or open_stream safe: nothing it returns or raises carries the channel's key.

    The one place every adapter's upstream text passes, so a translation that forgets the key cannot leak it.
    """
    @functools.wraps(adapter_call)
    def call_upstream(call: UpstreamCall):
        try:
            answer = adapter_call(call)
        except UpstreamError as error:
            raise _keyless_error(error, call) from None
        answer.served_model = keyless_name(answer.served_model, call)
        if isinstance(answer, Completion):
            _keyless_names(answer.body, call)
        else:
            answer.chunks = _keyless_chunks(answer, answer.chunks, call)
        return answer
    return call_upstream


def _keyless_chunks(stream: ChunkStream, chunks: Iterator[dict], call: UpstreamCall) -> Iterator[dict]:
    try:
        for chunk in chunks:
            stream.served_model = keyless_name(stream.served_model, call)
            yield _keyless_names(chunk, call)
    except UpstreamError as error:
        raise _keyless_error(error, call) from None
    finally:
        stream.served_model = keyless_name(stream.served_model, call)


def _keyless_names(payload: dict, call: UpstreamCall) -> dict:
    """A body or chunk whose names (model, id, system fingerprint) carry no key."""
    if "model" in payload:
        payload["model"] = keyless_name(payload["model"], call) or call.upstream_model
    for name in NAMES:
        if isinstance(payload.get(name), str):
            payload[name] = keyless_name(payload[name], call) or ""
    return payload


def _keyless_error(error: UpstreamError, call: UpstreamCall) -> UpstreamError:
    """The same error, its texts redacted in place, so any other attribute it carries is kept."""
    error.detail = keyless(error.detail, call)
    error.args = (error.detail,)
    if error.client_message:
        error.client_message = keyless(error.client_message, call, MESSAGE_LIMIT)
    return error
