"""Two gunicorn nodes on one database: shared cooldowns, shared balances, long streams survive."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest
import requests

from tests.conftest import ROOT, assert_ledger_green

GUNICORN = Path(sys.executable).parent / "gunicorn"
LONG_STREAM_S = 33  # longer than the 30 s that kills sync workers


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def nodes(database_url, instance_dir, gateway):
    """Two gunicorn processes (gevent workers, gunicorn.conf.py) serving the test database."""
    ports = [_free_port(), _free_port()]
    env = {**os.environ, "WAYBILL_DATABASE_URL": database_url, "WAYBILL_INSTANCE_PATH": str(instance_dir),
           "WAYBILL_WORKERS": "1"}
    procs = [subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    deadline = time.monotonic() + 60
    for url, proc in zip(urls, procs):
        while True:
            try:
                if requests.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield urls
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def _ask(client: openai.OpenAI):
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from a node"}])


def test_two_nodes_share_cooldowns_balances_and_hold_long_streams(nodes, gateway):
    node_a, node_b = (_client(url, gateway.key) for url in nodes)

    # A stream longer than 30 s runs on node A while the rest of the test goes on.
    gateway.sim.set_fault("backup", chunk_delay_ms=int(LONG_STREAM_S * 1000 / 30), reply_tokens=30)
    long_stream: dict = {}

    def run_long_stream():
        stream = _client(nodes[0], gateway.key).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "take your time"}],
            extra_headers={"X-Test": "long"})
        long_stream["receipt"] = stream.headers["X-Waybill-Receipt"]
        long_stream["chunks"] = sum(1 for c in stream.parse() if c.choices and c.choices[0].delta.content)

    # Route the long stream to the slow backup by failing the primary for exactly that request.
    gateway.sim.set_fault("primary", status=503, times=1)
    started = time.monotonic()
    streamer = threading.Thread(target=run_long_stream)
    streamer.start()
    time.sleep(1.0)

    # Node A trips the primary's circuit: three fallback-worthy failures.
    gateway.sim.set_fault("primary", status=500)
    gateway.sim.set_fault("backup")  # healthy and quick again for the requests below
    for _ in range(3):
        assert _ask(node_a).headers["X-Waybill-Route"] == "backup"
    contacted = len(gateway.sim.log("primary"))
    time.sleep(1.2)  # node B's cache of channel health is at most 1 s old
    raw = _ask(node_b)
    assert raw.headers["X-Waybill-Route"] == "backup"
    receipt = node_b.get(f"/receipts/{raw.headers['X-Waybill-Receipt']}", cast_to=object)
    assert (receipt["attempts"][0]["channel"], receipt["attempts"][0]["error_class"]) == ("primary", "cooling_down")
    assert len(gateway.sim.log("primary")) == contacted, "node B contacted a channel node A had tripped"

    # Both nodes report the same balances, equal to the database's.
    seen_a = requests.get(f"{nodes[0]}/v1/wallets", headers={"Authorization": f"Bearer {gateway.key}"}, timeout=10).json()
    seen_b = requests.get(f"{nodes[1]}/v1/wallets", headers={"Authorization": f"Bearer {gateway.key}"}, timeout=10).json()
    assert seen_a == seen_b

    streamer.join(timeout=LONG_STREAM_S + 60)
    assert not streamer.is_alive()
    assert time.monotonic() - started > 30
    assert long_stream["chunks"] == 30
    long_receipt = node_a.get(f"/receipts/{long_stream['receipt']}", cast_to=object)
    assert long_receipt["status"] == "succeeded" and long_receipt["route"]["channel"] == "backup"
    assert gateway.balances()["routed"][1] == 0
    final = requests.get(f"{nodes[1]}/v1/wallets", headers={"Authorization": f"Bearer {gateway.key}"}, timeout=10).json()
    balances = gateway.balances()
    assert {w["wallet"]: (w["balance_micros"], w["reserved_micros"]) for w in final["data"]} == balances
    assert_ledger_green()
