"""The simulator's WSGI app: control endpoints plus one blueprint per wire protocol."""
from __future__ import annotations

import socket
import time

from flask import Flask, Response, jsonify, request

from app.simulator.state import MAX_HANG_S, Fault, LoggedRequest, SimulatorState

LOGGED_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "anthropic-version", "user-agent")


def create_simulator(state: SimulatorState | None = None) -> Flask:
    """Build a simulator app around a fault registry and request log."""
    from app.simulator.anthropic_api import bp as anthropic_bp
    from app.simulator.gemini_api import bp as gemini_bp
    from app.simulator.openai_api import bp as openai_bp

    sim = Flask("waybill-simulator")
    sim.config["SIM_STATE"] = state or SimulatorState()
    for blueprint in (openai_bp, anthropic_bp, gemini_bp):
        sim.register_blueprint(blueprint)

    @sim.put("/_control/faults/<channel>")
    def set_fault(channel: str):
        try:
            fault = Fault.from_dict(request.get_json(force=True) or {})
        except (TypeError, ValueError) as exc:
            return jsonify(error=str(exc)), 400
        sim_state().set_fault(channel, fault)
        return jsonify(channel=channel, fault=sim_state().faults().get(channel))

    @sim.delete("/_control/faults")
    def reset():
        sim_state().clear()
        return jsonify(ok=True)

    @sim.get("/_control/log")
    def log():
        return jsonify(sim_state().log(request.args.get("channel")))

    @sim.get("/_control/health")
    def health():
        return jsonify(ok=True)

    return sim


def sim_state() -> SimulatorState:
    from flask import current_app
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
            pass
    return Response(b"", status=502)


def cut_stream():
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
    return f"data: {data}\n\n".encode()
