"""Prometheus metrics for the API, with prometheus_client.

Under gunicorn (`stockcast serve`) PROMETHEUS_MULTIPROC_DIR names a folder where every worker
process writes its counters and histograms (one memory-mapped file per process and metric type;
prometheus_client picks that storage when it is first imported, so the variable must be set
before). A scrape, whichever worker answers it, sums every file into a fresh registry: the figures
are the whole server's, as if there were one process. Files of workers that exited stay and keep
counting, so totals never go backwards when gunicorn recycles a worker. The folder's lifecycle
(created, emptied at start, dead workers marked) is in `api/gunicorn_conf.py`.

Without the variable (tests with the Flask test client, `flask run`) each app keeps its metrics in
memory, in objects of its own, so two apps in one process never share or clash.

Exposed:
- stockcast_http_requests_total{method,route,status}: counter.
- stockcast_http_request_duration_seconds{method,route}: histogram.
- stockcast_forecast_age_days{ticker}: gauge read from the database at scrape time.
`route` is the URL rule (`/v1/forecasts/<ticker>`, or `<unmatched>`), never the raw path, so the
number of series stays bounded whatever clients send.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from forecaster.settings import Settings

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# `_created` series exist only in single-process mode; without them both modes expose the same
# series, and the process has no other prometheus_client user that would want them.
disable_created_metrics()


def multiprocess_dir() -> str | None:
    """The folder shared by the worker processes, or None in single-process mode.

    Read from the environment now (Settings.metrics_dir), not from the app's Settings: it is
    prometheus_client's own contract, read by the library itself at import time, and must match
    what the library decided.
    """
    folder = Settings.from_env().metrics_dir
    return str(folder) if folder is not None else None


class _ForecastAges(Collector):
    """A gauge computed at scrape time from the database: the same whichever process answers, so
    it needs no per-process file (nor a gauge multiprocess_mode)."""

    def __init__(self, ages: dict[str, float]) -> None:
        self._ages = ages

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "stockcast_forecast_age_days",
            "Days from the latest forecast's as-of date to today (UTC).",
            labels=["ticker"],
        )
        for ticker, age in sorted(self._ages.items()):
            family.add_metric([ticker], age)
        yield family


class Metrics:
    """The request metrics of one app (one per worker process under gunicorn)."""

    def __init__(self) -> None:
        self._multiprocess_dir = multiprocess_dir()
        # registry=None: in multiprocess mode the values live in the shared files and are
        # collected from there; in single-process mode `render` registers these objects in the
        # registry it builds, so nothing lands in prometheus_client's global registry.
        self._requests = Counter(
            "stockcast_http_requests_total",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=None,
        )
        self._latency = Histogram(
            "stockcast_http_request_duration_seconds",
            "Request latency by method and route.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=None,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @property
    def multiprocess(self) -> bool:
        return self._multiprocess_dir is not None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # `labels()` validates and locks on every call; the children are looked up once per
        # series instead (the series are bounded: route is the URL rule, never the raw path).
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, route, str(status)),
                self._latency.labels(method, route),
            )
            self._children[key] = children  # a race only stores the same children twice
        children[0].inc()
        children[1].observe(seconds)

    def render(self, forecast_ages: dict[str, float]) -> bytes:
        """Text exposition format 0.0.4 of every metric, from a registry built for this scrape."""
        registry = CollectorRegistry()
        if self._multiprocess_dir is not None:
            MultiProcessCollector(registry, path=self._multiprocess_dir)
        else:
            registry.register(self._requests)
            registry.register(self._latency)
        registry.register(_ForecastAges(forecast_ages))
        return generate_latest(registry)
