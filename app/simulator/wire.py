"""What every simulated wire protocol shares: the request log, faults, dropped connections, tokens, SSE."""
from __future__ import annotations

import socket
import time

from flask import Response, current_app, request

from app.simulator.state import MAX_HANG_S, Fault, LoggedRequest, SimulatorState

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
    return fault


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
    """The simulator's tokenizer: about four characters per token, at least one."""
    return max(1, -(-len(text) // 4))


def reply_words(channel: str, model: str, n: int) -> list[str]:
    """A deterministic reply of n one-token words."""
    base = f"Simulated reply from {channel} serving {model} .".split()
    return [base[i % len(base)] + " " for i in range(n)]


def sse(data: str) -> bytes:
    """One server-sent event carrying data."""
    return f"data: {data}\n\n".encode()
