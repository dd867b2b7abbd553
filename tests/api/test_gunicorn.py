"""The API as `stockcast serve` runs it: a real gunicorn master with 3 workers on loopback.

/metrics must report the whole server (prometheus_client multiprocess mode), and the requests
gunicorn refuses before Flask sees them (414, 431, 400) must answer in the API's JSON shape.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from apidata import seed
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from api.gunicorn_worker import error_status, json_error_response
from forecaster import migrate, storage

WORKERS = 3


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    metrics_dir: Path

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: the refusals never reach Flask, so they leave the request
    counts that test_metrics_sum_every_worker checks untouched."""
    tmp_path = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    migrate.upgrade(url)
    engine = storage.make_engine(url)
    seed(storage.make_session_factory(engine), gspc_forecast=True)
    engine.dispose()
    port = free_port()
    metrics_dir = tmp_path / "prometheus" / str(port)  # `stockcast serve`'s default folder
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from a previous run")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {
        "DATABASE_URL": url,
        "STOCKCAST_DATA_DIR": str(tmp_path),
        "STOCKCAST_LOG_LEVEL": "WARNING",
    }
    stockcast = Path(sys.executable).parent / "stockcast"
    argv = [str(stockcast), "serve", "--port", str(port), "--workers", str(WORKERS)]
    # `serve` execs gunicorn in place: this process is the master, terminate() stops it cleanly.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    stderr = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"stockcast serve exited: {stderr}") from None
                time.sleep(0.1)
        yield Server("127.0.0.1", port, metrics_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def scrape(base: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        assert r.status == 200
        text = r.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def worker_pids(server: Server) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in server.metrics_dir.glob("counter_*.db")}


def counts_per_worker(server: Server, tmp_path: Path) -> list[float]:
    """What each worker alone counted for the forecast route: what a per-process /metrics
    would have answered, depending on which worker took the scrape."""
    counts = []
    for file in sorted(server.metrics_dir.glob("counter_*.db")):
        alone = tmp_path / file.stem
        alone.mkdir()
        shutil.copy(file, alone / file.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        value = registry.get_sample_value(
            "stockcast_http_requests_total",
            {"method": "GET", "route": "/v1/forecasts/<ticker>", "status": "200"},
        )
        counts.append(value or 0.0)
    return counts


@pytest.mark.slow
def test_metrics_sum_every_worker(server: Server, tmp_path: Path) -> None:
    assert not (server.metrics_dir / "counter_999999.db").exists()  # emptied at start
    # Wait until every worker has loaded the app and answered once (each leaves a counter file):
    # otherwise the first worker up could take all the requests.
    deadline = time.monotonic() + 60
    while len(worker_pids(server)) < WORKERS and time.monotonic() < deadline:
        urllib.request.urlopen(f"{server.base}/healthz", timeout=5).read()
    assert len(worker_pids(server)) == WORKERS

    def get(_: int) -> int:
        # urllib sends `Connection: close`: every request is a new connection, free to land on
        # any worker.
        with urllib.request.urlopen(f"{server.base}/v1/forecasts/%5EGSPC", timeout=5) as r:
            r.read()
            return r.status

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(get, range(30))) == [200] * 30

    samples = scrape(server.base)
    route = (("method", "GET"), ("route", "/v1/forecasts/<ticker>"))
    assert samples["stockcast_http_requests_total"][(*route, ("status", "200"))] == 30
    assert samples["stockcast_http_request_duration_seconds_count"][route] == 30
    assert samples["stockcast_forecast_age_days"][(("ticker", "^GSPC"),)] > 0
    assert not any("pid" in dict(k) for series in samples.values() for k in series)
    # The 30 were served by more than one process: no single worker's own count is the total.
    per_worker = counts_per_worker(server, tmp_path)
    assert sum(per_worker) == 30 and max(per_worker) < 30, per_worker


def raw_request(server: Server, request: bytes) -> tuple[int, str, dict[str, object]]:
    """Send bytes as they are and read the whole answer (gunicorn closes after an error)."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    return response.status, response.getheader("Content-Type", ""), json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (
            b"GET /v1/forecasts/" + b"A" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            "request_uri_too_long",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: 1\r\n" % i for i in range(150))
            + b"\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "bad_request"),
    ],
    ids=["long-url", "huge-header", "many-headers", "bad-request-line"],
)
@pytest.mark.slow
def test_gunicorn_refusals_are_json(
    server: Server, request_bytes: bytes, status: int, code: str
) -> None:
    got_status, content_type, body = raw_request(server, request_bytes)
    assert got_status == status
    assert content_type == "application/json"
    assert list(body) == ["error"] and body["error"]["code"] == code  # type: ignore[index]
    message = body["error"]["message"]  # type: ignore[index]
    # Fixed text: nothing from the request, no gunicorn internals.
    assert "AAAA" not in message and "aaaa" not in message and "gunicorn" not in message.lower()


def test_refusal_page_rewritten_as_json() -> None:
    """The worker keeps gunicorn's status line and replaces its HTML page."""
    page = b"HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<h1>"
    assert error_status(page) == (414, "URI Too Long")
    assert error_status(b"") is None
    head, body = json_error_response(414, "URI Too Long").split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"Content-Type: application/json" in head and b"Connection: close" in head
    assert json.loads(body) == {
        "error": {"code": "request_uri_too_long", "message": "the request line is too long"}
    }
    _, body = json_error_response(500, "Internal Server Error").split(b"\r\n\r\n", 1)
    assert json.loads(body)["error"] == {
        "code": "internal_error",
        "message": "internal server error",
    }
