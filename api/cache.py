"""A tiny per-worker TTL cache of responses for the hottest reads (the latest forecast, chart
series), and the entity-tag helpers of conditional requests.

Forecasts change once a day; clients are already told they may cache for
STOCKCAST_API_CACHE_MAX_AGE seconds. Holding the response for a few seconds
(STOCKCAST_API_RESPONSE_TTL, 0 disables) takes the database off most requests.
Only successful responses are kept (api/middleware.py), so a new ticker or forecast shows up
within the TTL.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


def etag_of(body: bytes) -> str:
    """The strong ETag of a body, quoted as the header carries it."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def if_none_match(header: str, tag: str) -> bool:
    """Whether an If-None-Match value matches the unquoted entity tag `tag` (weak comparison),
    parsed as werkzeug.http.parse_etags does: `*`, comma-separated tags, quoted or not, `W/`."""
    if header == "*":
        return True
    for item in header.split(","):
        item = item.strip()
        if item[:2] in ("W/", "w/"):
            item = item[2:]
        if len(item) >= 2 and item[0] == item[-1] == '"':
            item = item[1:-1]
        if item == tag:
            return True
    return False


class ResponseCache(Generic[V]):
    """Values kept for `ttl_seconds`, at most `max_entries` of them and `max_bytes` in all (as
    `size` measures a value): when either is reached, expired entries go, then all of them."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        size: Callable[[V], int] = lambda _value: 0,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = size
        self.clock = clock  # seconds, never going back
        self._items: dict[Hashable, tuple[float, V, int]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        if self.ttl <= 0:
            return None
        item = self._items.get(key)
        if item is None or item[0] < self.clock():
            return None
        return item[1]

    def clear(self) -> None:
        with self._lock:
            self._items = {}
            self._bytes = 0

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl <= 0:
            return
        size = self.size(value)
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= 0 if old is None else old[2]
            if len(self._items) >= self.max_entries or self._bytes + size > self.max_bytes:
                now = self.clock()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                self._bytes = sum(v[2] for v in self._items.values())
                if len(self._items) >= self.max_entries or self._bytes + size > self.max_bytes:
                    self._items = {}  # bounded memory whatever the key pattern
                    self._bytes = 0
            self._items[key] = (self.clock() + self.ttl, value, size)
            self._bytes += size
