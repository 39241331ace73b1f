"""Run the simulator on a loopback port, in a background thread or in the foreground."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from app.simulator.app import create_simulator
from app.simulator.state import Fault, SimulatorState


class QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without a log line per request: the simulator keeps its own log."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@dataclass
class RunningSimulator:
    """A simulator serving in a thread; `url(channel)` is a channel's OpenAI base URL."""

    server: BaseWSGIServer
    thread: threading.Thread
    state: SimulatorState

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def url(self, channel: str) -> str:
        return f"{self.root}/{channel}/v1"

    def set_fault(self, channel: str, **knobs) -> None:
        self.state.set_fault(channel, Fault.from_dict(knobs))

    def log(self, channel: str | None = None) -> list[dict]:
        return self.state.log(channel)

    def reset(self) -> None:
        self.state.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def start_simulator(port: int = 0, host: str = "127.0.0.1") -> RunningSimulator:
    """Serve a fresh simulator in a daemon thread and return its handle."""
    state = SimulatorState()
    server = make_server(host, port, create_simulator(state), threaded=True, request_handler=QuietHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="waybill-simulator", daemon=True)
    thread.start()
    return RunningSimulator(server=server, thread=thread, state=state)


def set_remote_fault(root: str, channel: str, **knobs) -> None:
    """Set a fault on a simulator running in another process."""
    requests.put(f"{root}/_control/faults/{channel}", json=knobs, timeout=5).raise_for_status()
