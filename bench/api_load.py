"""API load benchmark: GET /v1/forecasts/^GSPC under gunicorn on loopback, SQLite then PostgreSQL,
side by side with two bare Flask routes under the same gunicorn configuration, in one run.

For each database: migrate a fresh one, backfill ^GSPC from the offline sample provider, train
and predict (real model, small epoch budget), then start gunicorn four times, one after another,
and drive each with wrk (if installed: `apt-get install wrk`) or a bounded Python keep-alive
client:
- stockcast `GET /v1/forecasts/^GSPC`, started the way `stockcast serve` does (workers sharing
  a prometheus multiprocess folder), with the per-worker response micro-cache
  (STOCKCAST_API_RESPONSE_TTL=5, the default) and without it (0: every request reads the
  database);
- bench/bare_app.py: `/hello` (a constant body) and `/read` (one read of the newest prediction
  through SQLAlchemy Core), the same worker class, workers and threads.
It prints requests/second and p50/p99 latency for each, and the ratios the service is held to:
uncached / bare one-read route and cached / bare hello-world. Traffic goes to 127.0.0.1 only
and every run is bounded in time.

Run: .venv/bin/python bench/api_load.py [--seconds 10] [--connections 16] [--workers 2] [--threads 4]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cli.serve import gunicorn_argv, metrics_env
from forecaster import migrate, service, storage
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PATH = "/v1/forecasts/%5EGSPC"
PG_ADMIN = os.environ.get(
    "STOCKCAST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def prepare(url: str, data_dir: Path) -> None:
    migrate.upgrade(url)
    # A served forecast, not a good one: a short model and a one-fold backtest keep set-up quick.
    settings = Settings().replace(
        database_url=url,
        data_dir=data_dir,
        model=Settings().model.replace(epochs=5),
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


def run_wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
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

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"unexpected wrk output: {out[-200:]}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} error responses during the run")
    return float(rate.group(1)), ms("50"), ms("99")


def run_python(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    base, _, path = url.removeprefix("http://").partition("/")
    host, port = base.split(":")
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]

    def worker(slot: list[float]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            conn.request("GET", "/" + path)
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


def bare_argv(port: int, workers: int, threads: int) -> list[str]:
    """bench/bare_app.py under the gunicorn settings that matter for speed, as stockcast's."""
    exe = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    return [
        exe,
        "bench.bare_app:app",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "5",
    ]


def load(
    argv: list[str], env: dict[str, str], path: str, args: argparse.Namespace
) -> tuple[float, float, float]:
    """Start one gunicorn, wait until `path` answers, warm it up, measure, stop it."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{argv[argv.index('--bind') + 1]}{path}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        runner = run_wrk if shutil.which("wrk") and not args.python_client else run_python
        runner(url, 2, args.connections)  # warm-up
        return runner(url, args.seconds, args.connections)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    """Prepare one database, then load stockcast with and without its micro-cache and the two
    bare routes, one after another, and print them with the ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        prepare(url, Path(tmp))
        results: dict[str, tuple[float, float, float]] = {}
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
            results["cached 5s" if ttl != "0" else "uncached"] = load(argv, env, PATH, args)
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        for name, path in (("bare hello", "/hello"), ("bare 1 read", "/read")):
            argv = bare_argv(free_port(), args.workers, args.threads)
            results[name] = load(argv, env, path, args)
        tool = "wrk" if shutil.which("wrk") and not args.python_client else "python client"
        print(
            f"{label}: {tool}, {args.connections} connections, {args.seconds}s each, "
            f"{args.workers} workers x {args.threads} threads"
        )
        for mode, (rps, p50, p99) in results.items():
            print(f"  {mode:<12} {rps:9,.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        print(
            f"  ratios: uncached / bare 1 read {results['uncached'][0] / results['bare 1 read'][0]:.2f}x"
            f" (target >= 0.8), cached / bare hello "
            f"{results['cached 5s'][0] / results['bare hello'][0]:.2f}x (target >= 0.8)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
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
