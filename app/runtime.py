"""Per-app state that outlives a request: the clock and the short-lived caches, made in create_app."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Hashable

from flask import Flask, current_app

EXTENSION = "waybill.runtime"


def system_utcnow() -> datetime:
    """The wall clock in UTC, without tzinfo, as every timestamp column stores it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class TtlCache:
    """A bounded, thread-safe map whose entries expire after `ttl_s` seconds of the runtime's clock."""

    def __init__(self, ttl_s: float | None, max_entries: int, monotonic: Callable[[], float]):
        self.ttl_s, self.max_entries, self._monotonic = ttl_s, max_entries, monotonic
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: object = None) -> object:
        """The live value under key, or default."""
        entry = self._entries.get(key)
        if entry is None or (self.ttl_s is not None and entry[0] <= self._monotonic()):
            return default
        return entry[1]

    def put(self, key: Hashable, value: object) -> None:
        """Store a value; a full cache starts over, so a flood of new keys cannot grow it without end."""
        expires = self._monotonic() + (self.ttl_s or 0)
        with self._lock:
            if len(self._entries) >= self.max_entries and key not in self._entries:
                self._entries.clear()
            self._entries[key] = (expires, value)

    def clear(self) -> None:
        """Forget everything, after a local change that must be seen at once."""
        with self._lock:
            self._entries.clear()


@dataclass
class Runtime:
    """The app's clock and caches; tests swap the clock to test durations without sleeping."""

    now: Callable[[], datetime] = system_utcnow
    monotonic: Callable[[], float] = time.monotonic
    caches: dict[str, TtlCache] = field(default_factory=dict)

    def cache(self, name: str, ttl_s: float | None = None, max_entries: int = 10_000) -> TtlCache:
        """The named cache, created on first use; ttl_s None means entries never expire."""
        found = self.caches.get(name)
        if found is None:
            found = self.caches.setdefault(name, TtlCache(ttl_s, max_entries, lambda: self.monotonic()))
        return found


def init_app(app: Flask) -> None:
    """Give the app its runtime."""
    app.extensions[EXTENSION] = Runtime()


def runtime() -> Runtime:
    """The current app's runtime."""
    return current_app.extensions[EXTENSION]


def now() -> datetime:
    """The runtime's clock: the wall clock in UTC, or a test's."""
    return current_app.extensions[EXTENSION].now()
