"""What every simulated wire protocol shares: the request log, faults, dropped connections, tokens, SSE."""
from __future__ import annotations

import socket
import time

from flask import Response, abort, after_this_request, current_app, redirect, request

from app.simulator.state import MAX_HANG_S, Fault, LoggedRequest, SimulatorState, text_words

LOGGED_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "anthropic-version", "user-agent")


def sim_state() -> SimulatorState:
    """The fault registry and request log of the simulator serving this request."""
    return current_app.config["SIM_STATE"]


def begin(channel: str, model: str | None, stream: bool, body: dict) -> Fault:
    """Log the request and return the fault to apply, after any latency or hang."""
    headers = {k: v for k, v in ((h, request.headers.get(h)) for h in LOGGED_HEADERS) if v is not None}
    headers["names"] = ",".join(sorted(h.lower() for h in request.headers.keys()))
    sim_state().record(LoggedRequest(channel=channel, path=request.path, model=model, stream=stream,
                                     at=time.time(), headers=headers, body=body))
    fault = sim_state().take_fault(channel)
    if fault.hang:
        time.sleep(MAX_HANG_S)
    elif fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    if fault.redirect_to:
        abort(redirect(fault.redirect_to, code=307))  # 307 keeps method and body: a client that follows re-sends all
    if fault.echo_key:
        echo = fault.key_echo(received_key())

        @after_this_request
        def echo_in_a_header(response: Response) -> Response:
            response.headers["X-Echo-Key"] = echo
            return response
    return fault


def received_key() -> str:
    """The API key this request carried, in whichever header its protocol puts it."""
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key") or bearer


def echoed(fault: Fault, text: str) -> str:
    """text as the faulty upstream says it, echoing the received key if the fault says so."""
    return f"{text} (key {fault.key_echo(received_key())})" if fault.echo_key else text


def failure_message(fault: Fault, channel: str) -> str:
    """The message of a simulated error status."""
    return echoed(fault, f"simulated {fault.status} from {channel}")


def drop_connection() -> Response:
    """Close the client's connection without an answer, as a crashed upstream would."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client already hung up: the connection is gone either way
    return Response(b"", status=502)


def cut_stream() -> None:
    """Inside a streaming generator: end the connection mid-stream."""
    drop_connection()


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: four ASCII characters a token, a token for each other character."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return max(1, -(-ascii_chars // 4) + len(text) - ascii_chars)


def reply_words(channel: str, model: str, n: int, text: str | None = None) -> list[str]:
    """A deterministic reply of n one-token words: the fault's reply_text if it has one, else a stock sentence."""
    if text is not None:
        return text_words(text)[:n]
    base = f"Simulated reply from {channel} serving {model} .".split()
    return [base[i % len(base)] + " " for i in range(n)]



def sse(data: str) -> bytes:
    """One server-sent event carrying data."""
    return f"data: {data}\n\n".encode()
