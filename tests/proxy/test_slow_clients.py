"""Slow clients: a body slower than the read deadline gets 408, and one key's requests in flight are bounded."""
from __future__ import annotations

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import openai
import pytest
import requests

from app.accounts.models import ApiKey
from app.accounts.service import hash_key, issue_key
from app.extensions import db
from app.proxy.limits import in_flight
from tests.conftest import ROOT, assert_ledger_green

GUNICORN = Path(sys.executable).parent / "gunicorn"
CHAT = "/v1/chat/completions"
PROMPT = "How long does a slow body take? " * 10
# A body that never completes however long it trickles: far more spaces than a trickle sends.
UNENDING = b"{" + b" " * 1000 + b"}"
TRICKLE_S = 0.5
WAIT_S = 60  # the bound on every wait: generous, since machines are noisy
POOL_CONNECTIONS = 15  # SQLAlchemy's QueuePool: 5, and 10 more on overflow


def _until(done: Callable[[], object], what: str, timeout_s: float = WAIT_S) -> object:
    """Poll until done() is truthy, at most timeout_s seconds; its value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _port_free_now() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serving(url: str) -> bool:
    try:
        return requests.get(f"{url}/login", timeout=5).status_code == 200
    except requests.RequestException:  # not listening yet, or still loading the app
        return False


@pytest.fixture
def gunicorn_node(database_url, instance_dir, gateway, tmp_path):
    """Start one gunicorn (gevent workers, gunicorn.conf.py) on the test database with extra WAYBILL_* settings."""
    started: list[subprocess.Popen] = []

    def start(**settings: str) -> str:
        port = _port_free_now()
        env = {**os.environ, "WAYBILL_DATABASE_URL": database_url, "WAYBILL_INSTANCE_PATH": str(instance_dir),
               "WAYBILL_WORKERS": "1", **settings}
        log = tmp_path / f"gunicorn-{port}.log"
        with log.open("w") as stderr:
            started.append(subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
                                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr))
        url = f"http://127.0.0.1:{port}"
        _until(lambda: _serving(url) or started[-1].poll() is not None, "gunicorn to start")
        assert started[-1].poll() is None, log.read_text()[-2000:]
        return url
    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        proc.wait(timeout=30)


@pytest.fixture
def other_key(gateway, make_user) -> str:
    """The key of another user, with money of their own."""
    return issue_key(make_user("other@example.com", credit_usd="10", routed_usd="10"), "other").secret


def _chat_body(**extra) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], **extra}).encode()


def _open_slow(url: str, key: str, body: bytes, path: str = CHAT, keep_alive: bool = False) -> socket.socket:
    """A request whose headers and the first half of its body are sent; the rest is up to the test."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nx-api-key: {key}\r\n"
            f"x-goog-api-key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + ("" if keep_alive else "Connection: close\r\n") + "\r\n")
    sock.sendall(head.encode() + body[:len(body) // 2])
    return sock


def _trickle(sock: socket.socket) -> None:
    """Send one more space of UNENDING every TRICKLE_S seconds, until the server answers."""
    started = time.monotonic()
    for _ in range(len(UNENDING) // 2 - 1):
        if select.select([sock], [], [], TRICKLE_S)[0] or time.monotonic() - started > WAIT_S:
            return
        try:
            sock.send(b" ")
        except OSError:
            return  # the server closed the connection: its answer is waiting


def _answer(sock: socket.socket) -> tuple[http.client.HTTPResponse, bytes, bool]:
    """The response on a socket, its body, and whether the server then closed the connection."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    try:
        closed = sock.recv(1) == b""
    except ConnectionResetError:
        closed = True
    sock.close()
    return response, body, closed


def _finish(sock: socket.socket, body: bytes) -> int:
    """Send the rest of a slow body, unless it was answered already; the status of the answer."""
    if not select.select([sock], [], [], 0)[0]:
        sock.sendall(body[len(body) // 2:])
    return _answer(sock)[0].status


def _answered(socks: list[socket.socket], count: int) -> list[socket.socket]:
    """The sockets with an answer waiting, once there are `count` of them; else []."""
    ready = select.select(socks, [], [], 0.5)[0]
    return ready if len(ready) >= count else []


def _receipt(url: str, key: str, receipt_id: str) -> dict:
    return requests.get(f"{url}/v1/receipts/{receipt_id}", headers={"Authorization": f"Bearer {key}"},
                        timeout=WAIT_S).json()


def _ask(url: str, key: str) -> requests.Response:
    return requests.post(f"{url}{CHAT}", data=_chat_body(), timeout=WAIT_S,
                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def _all_held_at_once(url: str, key: str, count: int) -> list[int]:
    """Hold `count` requests of the key in flight together, then finish them: their statuses."""
    # They are all in flight once one more request of the key is refused; if a slot was not free, one of
    # them is refused instead, at once.
    body = _chat_body()
    socks = [_open_slow(url, key, body) for _ in range(count)]
    try:
        _until(lambda: _answered(socks, 1) or _ask(url, key).status_code == 429, f"{count} requests in flight")
    finally:
        statuses = [_finish(sock, body) for sock in socks]
    return statuses


def _check_refused_for_the_bound(response: requests.Response, url: str, key: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and "in flight" in error["message"]
    receipt = _receipt(url, key, response.headers["X-Waybill-Receipt"])
    assert receipt["status"] == "rejected" and receipt["charge_usd"] == "0.000000"


# --- the read deadline ---------------------------------------------------------------------------

def test_a_body_slower_than_the_deadline_gets_408_and_the_connection_closes(gunicorn_node, gateway):
    url = gunicorn_node(WAYBILL_BODY_READ_TIMEOUT_S="2")
    before = gateway.balances()
    sock = _open_slow(url, gateway.key, UNENDING, keep_alive=True)
    _trickle(sock)
    response, text, closed = _answer(sock)

    assert response.status == 408, text
    assert response.getheader("Connection", "").lower() == "close"
    assert closed, "the server kept the connection of a timed-out body open"
    error = json.loads(text)["error"]
    assert error["code"] == "request_timeout" and "2 s" in error["message"]
    receipt = _receipt(url, gateway.key, response.getheader("X-Waybill-Receipt"))
    assert (receipt["status"], receipt["charge_usd"]) == ("rejected", "0.000000")
    assert gateway.sim.log() == []
    assert gateway.balances() == before
    # The timed-out request gave its slot back: the key is served again.
    assert _ask(url, gateway.key).status_code == 200
    assert_ledger_green()


@pytest.mark.parametrize("path, field, value", [
    (CHAT, "code", "request_timeout"),
    ("/v1/messages", "type", "invalid_request_error"),  # Anthropic's envelope has no code
    ("/v1beta/models/gemini-2.5-flash:generateContent", "status", "DEADLINE_EXCEEDED"),
])
def test_the_dev_server_also_answers_slow_bodies_408_in_the_callers_envelope(app, providers, live_server,
                                                                              path, field, value):
    app.config["WAYBILL_BODY_READ_TIMEOUT_S"] = 1
    sock = _open_slow(live_server, providers.key, UNENDING, path=path)
    _trickle(sock)
    response, text, closed = _answer(sock)
    assert response.status == 408, text
    error = json.loads(text)["error"]
    assert error[field] == value
    assert "did not arrive within 1 s" in error["message"]
    assert "close" in response.getheader("Connection", "").lower() and closed
    assert response.getheader("X-Waybill-Receipt", "").startswith("rcpt_")
    _until(lambda: not in_flight().counts, "the slot to be given back")
    assert_ledger_green()


def test_a_body_being_read_holds_no_database_connection(app, gateway, other_key, live_server, clock):
    """More slow bodies than the database pool has connections, each after a key lookup that missed the cache."""
    body = _chat_body()
    key_id = _key_id(gateway.key)
    socks = []
    try:
        for held in range(1, POOL_CONNECTIONS + 6):
            clock.advance(5)  # past the cache of key lookups, so each request reads its key from the database
            socks.append(_open_slow(live_server, gateway.key, body))
            _until(lambda: in_flight().counts.get(key_id) == held, f"slow body {held} to be reading")
        served = openai.OpenAI(base_url=f"{live_server}/v1", api_key=other_key, max_retries=0, timeout=20)
        assert served.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).id
    finally:
        for sock in socks:
            sock.close()  # the client gives up: each slow request ends, receipted, and gives its slot back
    _until(lambda: not in_flight().counts, "every slot to be given back")
    assert_ledger_green()


def _key_id(secret: str) -> int:
    return db.session.scalar(db.select(ApiKey.id).where(ApiKey.key_hash == hash_key(secret)))


# --- the bound on requests in flight -------------------------------------------------------------

def test_forty_slow_bodies_from_one_key_leave_other_keys_served(gunicorn_node, gateway, other_key):
    url = gunicorn_node()  # the defaults: a 30 s read deadline, 32 requests in flight per key
    body = _chat_body()
    socks = [_open_slow(url, gateway.key, body) for _ in range(40)]
    try:
        # The 8 beyond the bound are refused at once, without their bodies being read.
        answered = _until(lambda: _answered(socks, 8), "the requests beyond the bound to be refused")
        refused = [_answer(sock) for sock in answered]
        assert [response.status for response, _, _ in refused] == [429] * 8
        assert all(response.getheader("Retry-After") == "1" for response, _, _ in refused)

        for _ in range(3):
            assert _ask(url, other_key).status_code == 200
        _check_refused_for_the_bound(_ask(url, gateway.key), url, gateway.key)
    finally:
        for sock in socks:
            sock.close()  # 32 clients hang up mid-body
    # Every slot came back: 32 requests of the key can be in flight together again.
    assert _until(lambda: _all_held_at_once(url, gateway.key, 32) == [200] * 32, "32 slots to be free")
    assert_ledger_green()


def test_streams_hold_their_slot_until_they_end_or_the_client_hangs_up(gunicorn_node, gateway):
    url = gunicorn_node(WAYBILL_MAX_IN_FLIGHT_PER_KEY="4")
    # Streams of about 10 s: the four are still running when the fifth request comes.
    gateway.sim.set_fault("primary", chunk_delay_ms=250, reply_tokens=40)

    def stream() -> tuple[requests.Response, Iterator[bytes]]:
        """A stream of the key, once its first event has arrived."""
        response = requests.post(f"{url}{CHAT}", data=_chat_body(stream=True), stream=True, timeout=WAIT_S,
                                 headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        events = response.iter_lines()
        assert next(events).startswith(b"data: ")
        return response, events

    streams = [stream() for _ in range(4)]
    _check_refused_for_the_bound(_ask(url, gateway.key), url, gateway.key)
    for _, events in streams:
        assert b"data: [DONE]" in list(events)
    assert _all_held_at_once(url, gateway.key, 4) == [200] * 4

    cut = [response for response, _ in (stream() for _ in range(4))]
    for response in cut:
        response.close()  # the client hangs up mid-stream
    for response in cut:
        receipt_id = response.headers["X-Waybill-Receipt"]
        _until(lambda: _receipt(url, gateway.key, receipt_id)["status"] == "interrupted", "the cut stream's receipt")
    gateway.sim.set_fault("primary")
    assert _until(lambda: _all_held_at_once(url, gateway.key, 4) == [200] * 4, "4 slots to be free")
    assert_ledger_green()
