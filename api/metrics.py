"""Prometheus text exposition (format 0.0.4) for request counts and latency histograms.

Counters live in the worker process; under gunicorn each worker reports its own series, labelled
with its pid, and Prometheus sums them (`sum by (route) (...)`).
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self._totals: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[(method, route, str(status))] += 1
            key = (method, route)
            i = bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                self._buckets[key][i] += 1
            self._sums[key] += seconds
            self._totals[key] += 1

    def render(self, forecast_ages: dict[str, float]) -> str:
        pid = str(os.getpid())
        lines = [
            "# HELP stockcast_http_requests_total HTTP requests by method, route and status.",
            "# TYPE stockcast_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self._counts.items()):
                lines.append(
                    f'stockcast_http_requests_total{{method="{method}",route="{_escape(route)}",'
                    f'status="{status}",pid="{pid}"}} {n}'
                )
            lines += [
                "# HELP stockcast_http_request_duration_seconds Request latency by method and route.",
                "# TYPE stockcast_http_request_duration_seconds histogram",
            ]
            for (method, route), counts in sorted(self._buckets.items()):
                labels = f'method="{method}",route="{_escape(route)}",pid="{pid}"'
                cumulative = 0
                for bound, n in zip(BUCKETS, counts, strict=True):
                    cumulative += n
                    lines.append(
                        f'stockcast_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative}'
                    )
                total = self._totals[(method, route)]
                lines.append(
                    f'stockcast_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total}'
                )
                lines.append(
                    f"stockcast_http_request_duration_seconds_sum{{{labels}}} {self._sums[(method, route)]:.6f}"
                )
                lines.append(f"stockcast_http_request_duration_seconds_count{{{labels}}} {total}")
        lines += [
            "# HELP stockcast_forecast_age_days Days from the latest forecast's as-of date to today (UTC).",
            "# TYPE stockcast_forecast_age_days gauge",
        ]
        for ticker, age in sorted(forecast_ages.items()):
            lines.append(f'stockcast_forecast_age_days{{ticker="{_escape(ticker)}"}} {age:g}')
        return "\n".join(lines) + "\n"
