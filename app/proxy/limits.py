"""Slow and greedy API clients: a deadline on reading a request body, and a bound on each key's requests in flight."""
# A request holds one of its worker's connections from its first byte to its last: without these, a client
# that sends its bodies slowly, or opens many requests at once, could hold every one of them.
from __future__ import annotations

import socket
import sys
import threading
from typing import Callable

from flask import Response, current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from app.extensions import db
from app.gateway.errors import GatewayError

EXTENSION = "waybill.in_flight"
# Where gunicorn and werkzeug's dev server put the client's socket in the WSGI environ.
SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


class InFlight:
    """How many requests each key has in flight in this process."""

    def __init__(self) -> None:
        self.counts: dict[int | None, int] = {}
        self._lock = threading.Lock()  # the dev server runs requests in threads

    def take(self, key_id: int | None, limit: int) -> Slot:
        """A slot for one more of the key's requests, or 429 rate_limited when it has `limit` already."""
        with self._lock:
            held = self.counts.get(key_id, 0)
            if held >= limit:
                raise GatewayError(429, "rate_limited", f"this key already has {limit} requests in flight, the most "
                                   "it may have at once; retry when one of them ends", retry_after=1)
            self.counts[key_id] = held + 1
        return Slot(self, key_id)

    def give_back(self, slot: Slot) -> None:
        """End a slot; ending it again changes nothing."""
        with self._lock:
            if slot.released:
                return
            slot.released = True
            left = self.counts[slot.key_id] - 1
            if left:
                self.counts[slot.key_id] = left
            else:
                del self.counts[slot.key_id]  # keys come and go: keep only those with requests in flight


class Slot:
    """One request's place among its key's requests in flight."""

    def __init__(self, owner: InFlight, key_id: int | None) -> None:
        self.owner, self.key_id, self.released = owner, key_id, False

    def release(self) -> None:
        self.owner.give_back(self)

    def around(self, answer: Callable[[], Response]) -> Response:
        """answer(), holding this slot until a streamed answer has been sent or dropped, else until it returns."""
        try:
            response = answer()
        except BaseException:
            self.release()
            raise
        if response.is_streamed:
            # The server closes the response after its last byte, or when the client hangs up mid-way.
            response.call_on_close(self.release)
        else:
            self.release()
        return response


def in_flight() -> InFlight:
    """This process's counts for the current app."""
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, InFlight())
    return found


def take_slot(key_id: int | None) -> Slot:
    """A slot for one more request of the key, within WAYBILL_MAX_IN_FLIGHT_PER_KEY; else 429."""
    return in_flight().take(key_id, current_app.config["WAYBILL_MAX_IN_FLIGHT_PER_KEY"])


def _call_later(seconds: float, callback: Callable[[], None]) -> Callable[[], None]:
    """Run callback after `seconds` unless the function returned is called first."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        # Under gevent workers a timer on the event loop costs a few µs; a (green) thread per request, 60.
        timer = sys.modules["gevent"].get_hub().loop.timer(seconds)
        timer.start(callback, update=True)  # from now, not from the loop's cached time, which may be stale
        return timer.close
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer.cancel


class ReadDeadline:
    """Stops a body read at a deadline by shutting the socket's read side, which leaves the write side for the 408."""
    # The shutdown wakes a read blocked on the socket at once, in a thread (the dev server) or a greenlet
    # (gunicorn's gevent workers) alike.

    def __init__(self, client: socket.socket | None, timeout_s: float) -> None:
        self.client, self.timeout_s, self.fired, self._done = client, timeout_s, False, False
        # The dev server's timer thread races the request for it; under gevent the timer's callback runs
        # on the loop, and the request never yields while it holds the lock, so it is never contended.
        self._lock = threading.Lock()
        self._cancel: Callable[[], None] = lambda: None

    def __enter__(self) -> ReadDeadline:
        if self.client is not None:  # without a socket (the test client) the body is in memory already
            self._cancel = _call_later(self.timeout_s, self._fire)
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> bool:
        """End the watch; True when the deadline came before the read ended."""
        with self._lock:
            self._done = True
        self._cancel()
        return self.fired

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
        try:
            self.client.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # the client is gone already


def read_body() -> None:
    """Read the request's body into the request within WAYBILL_BODY_READ_TIMEOUT_S; else 408, closing the connection."""
    # The body may take the whole deadline to arrive: hold no pooled database connection meanwhile,
    # or a few dozen slow bodies would starve every other request of one.
    if db.session().in_transaction():
        db.session.commit()
    timeout_s = current_app.config["WAYBILL_BODY_READ_TIMEOUT_S"]
    client = next((request.environ[key] for key in SOCKET_KEYS if key in request.environ), None)
    with ReadDeadline(client, timeout_s) as deadline:
        try:
            request.get_data(cache=True)
        except RequestEntityTooLarge:
            raise GatewayError(413, "request_too_large", "the body is too large") from None
        except ClientDisconnected:
            if not deadline.stop():
                raise GatewayError(400, "invalid_request",
                                   "the connection closed before the whole body arrived") from None
    if deadline.fired:
        raise GatewayError(408, "request_timeout", f"the body did not arrive within {timeout_s:g} s",
                           headers={"Connection": "close"})
