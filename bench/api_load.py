"""API load benchmark: GET /v1/forecasts/^GSPC under gunicorn on loopback, SQLite then PostgreSQL.

For each database: migrate a fresh one, backfill ^GSPC from the offline sample provider, train
and predict (real model, small epoch budget), start `gunicorn api.wsgi:app` the way
`stockcast serve` does (workers sharing a prometheus multiprocess folder), then drive it with wrk
(if installed: `apt-get install wrk`) or a bounded Python keep-alive client, and print
requests/second and p50/p99 latency, with the per-worker response micro-cache
(STOCKCAST_API_RESPONSE_TTL=5, the default) and without it. Traffic goes to 127.0.0.1 only and
every run is bounded in time.

Run: .venv/bin/python bench/api_load.py [--seconds 10] [--connections 32] [--workers 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cli.serve import gunicorn_argv, metrics_env
from forecaster import migrate, service, storage
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings

PATH = "/v1/forecasts/%5EGSPC"
PG_ADMIN = os.environ.get(
    "STOCKCAST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def prepare(url: str, data_dir: Path) -> None:
    migrate.upgrade(url)
    # A served forecast, not a good one: a short model and a one-fold backtest keep set-up quick.
    settings = replace(
        Settings(),
        database_url=url,
        data_dir=data_dir,
        model=replace(Settings().model, epochs=5),
        backtest_days=250,
        backtest_refit_every=250,
    )
    engine = storage.make_engine(url)
    sessions = storage.make_session_factory(engine)
    with sessions.begin() as s:
        service.backfill_ticker(s, SampleProvider(), "^GSPC")
    with sessions.begin() as s:
        service.train_ticker(s, settings, "^GSPC")
    with sessions.begin() as s:
        service.predict_ticker(s, settings, "^GSPC")
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_wrk(base: str, seconds: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", base + PATH],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} error responses during the run")
    return rps, ms("50"), ms("99")


def run_python(base: str, seconds: int, connections: int) -> tuple[float, float, float]:
    host, port = base.removeprefix("http://").split(":")
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]

    def worker(slot: list[float]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            conn.request("GET", PATH)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            slot.append(time.perf_counter() - t0)
        conn.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in latencies]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for slot in latencies for x in slot)
    q = statistics.quantiles(flat, n=100)
    return len(flat) / elapsed, q[49] * 1000, q[98] * 1000


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    """Prepare one database, then load it twice: with the per-worker micro-cache of the rendered
    forecast (the default) and without it (every request queries the database)."""
    with tempfile.TemporaryDirectory() as tmp:
        prepare(url, Path(tmp))
        for ttl in ("5", "0"):
            port = free_port()
            # As `stockcast serve` runs it: workers share a metrics folder (multiprocess mode).
            env = {
                **metrics_env(Path(tmp) / "prometheus" / str(port)),
                "DATABASE_URL": url,
                "STOCKCAST_DATA_DIR": tmp,
                "STOCKCAST_LOG_LEVEL": "WARNING",
                "STOCKCAST_API_RESPONSE_TTL": ttl,
            }
            argv = gunicorn_argv("127.0.0.1", port, args.workers, args.threads)
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            base = f"http://127.0.0.1:{port}"
            try:
                for _ in range(100):
                    try:
                        urllib.request.urlopen(base + PATH, timeout=1).read()
                        break
                    except OSError:
                        time.sleep(0.1)
                runner = run_wrk if shutil.which("wrk") and not args.python_client else run_python
                runner(base, 2, args.connections)  # warm-up
                rps, p50, p99 = runner(base, args.seconds, args.connections)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
            tool = "wrk" if shutil.which("wrk") and not args.python_client else "python client"
            mode = "cached 5s" if ttl != "0" else "uncached"
            print(
                f"{label:<9} {mode:<10} {rps:9,.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
                f"   ({tool}, {args.connections} connections, {args.seconds}s, "
                f"{args.workers} workers x {args.threads} threads)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--python-client", action="store_true", help="use the Python client even if wrk exists"
    )
    args = parser.parse_args()
    print(f"GET {PATH} on {os.cpu_count()} cores (load generator shares the machine)")
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", f"sqlite:///{tmp}/bench.db", args)
    name = f"stockcast_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"postgres   skipped: {str(exc).splitlines()[0]}")
        return
    try:
        measure(
            "postgres",
            make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False),
            args,
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
