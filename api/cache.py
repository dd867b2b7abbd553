"""A tiny per-worker TTL cache of rendered responses for the hottest read (the latest forecast).

Forecasts change once a day; clients are already told they may cache for
STOCKCAST_API_CACHE_MAX_AGE seconds. Holding the rendered body for a few seconds
(STOCKCAST_API_RESPONSE_TTL, 0 disables) takes the database and the ORM off most requests.
Only successful responses are cached, so a new ticker or forecast shows up within the TTL.
"""

from __future__ import annotations

import threading
import time


class ResponseCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 1024) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._items: dict[str, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        if self.ttl <= 0:
            return None
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def put(self, key: str, body: bytes) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= self.max_entries:
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                if len(self._items) >= self.max_entries:
                    self._items.clear()  # bounded memory whatever the key pattern
            self._items[key] = (time.monotonic() + self.ttl, body)
