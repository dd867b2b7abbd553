"""API load benchmark: GET /v1/forecasts/^GSPC under gunicorn on loopback, SQLite then PostgreSQL,
side by side with two bare Flask routes under the same gunicorn configuration, in one run.

For each database: migrate a fresh one, backfill ^GSPC from the offline sample provider, train
and predict (real model, small epoch budget), then start three gunicorns side by side:
- stockcast `GET /v1/forecasts/^GSPC`, started the way `stockcast serve` does (workers sharing
  a prometheus multiprocess folder), with the per-worker response micro-cache
  (STOCKCAST_API_RESPONSE_TTL=5, the default) and without it (0: every request reads the
  database);
- bench/bare_app.py: `/hello` (a constant body) and `/read` (one read of the newest prediction
  through SQLAlchemy Core), the same worker class, workers and threads.
Each of the four targets is driven with wrk (if installed: `apt-get install wrk`) or a bounded
Python keep-alive client for `--seconds`, one after another, in `--rounds` rounds. A shared
machine's speed swings several-fold within minutes, so each ratio the service is held to
(uncached / bare one-read route, cached / bare hello-world) is taken between its two targets
run back to back (which goes first alternates), and the median over rounds is printed, with
every target's median requests/second and p50/p99 latency. Traffic goes to 127.0.0.1 only and
every run is bounded in time.

Run: .venv/bin/python bench/api_load.py [--seconds 2] [--rounds 9] [--connections 16]
     [--workers 2] [--threads 4]
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
        model_scope="ticker",  # one ticker trained on its own (service.train_ticker)
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


def start(argv: list[str], env: dict[str, str], path: str) -> subprocess.Popen[bytes]:
    """Start one gunicorn and wait until `path` answers."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://{argv[argv.index('--bind') + 1]}{path}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"{' '.join(argv[:2])} did not answer {path}")


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    """Prepare one database, start stockcast with and without its micro-cache and the bare app,
    then load the four targets, each ratio's two back to back, and print medians."""
    runner = run_wrk if shutil.which("wrk") and not args.python_client else run_python
    with tempfile.TemporaryDirectory() as tmp:
        prepare(url, Path(tmp))
        targets: dict[str, str] = {}
        servers: list[subprocess.Popen[bytes]] = []
        try:
            for name, ttl in (("cached 5s", "5"), ("uncached", "0")):
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
                servers.append(start(argv, env, PATH))
                targets[name] = f"http://127.0.0.1:{port}{PATH}"
            port = free_port()
            env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
            servers.append(start(bare_argv(port, args.workers, args.threads), env, "/hello"))
            targets["bare hello"] = f"http://127.0.0.1:{port}/hello"
            targets["bare 1 read"] = f"http://127.0.0.1:{port}/read"
            for target in targets.values():
                runner(target, 1, args.connections)  # warm-up: pools, caches, first imports
            runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in targets}
            # Each ratio's two targets run back to back, first one then the other first.
            pairs = [("uncached", "bare 1 read"), ("cached 5s", "bare hello")]
            for r in range(args.rounds):
                for pair in pairs if r % 2 == 0 else pairs[::-1]:
                    for name in pair if r % 2 == 0 else pair[::-1]:
                        runs[name].append(runner(targets[name], args.seconds, args.connections))
        finally:
            for proc in servers:
                proc.terminate()
            for proc in servers:
                proc.wait(timeout=15)
    tool = "wrk" if runner is run_wrk else "python client"
    print(
        f"{label}: {tool}, {args.connections} connections, {args.rounds} rounds of "
        f"{args.seconds}s per target, {args.workers} workers x {args.threads} threads"
    )
    for name, results in runs.items():
        rates = [rps for rps, _, _ in results]
        rps, p50, p99 = sorted(results)[len(results) // 2]
        print(
            f"  {name:<12} {rps:9,.0f} req/s (rounds {min(rates):,.0f}-{max(rates):,.0f})"
            f"   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
        )

    def ratio(a: str, b: str) -> str:
        per_round = sorted(x[0] / y[0] for x, y in zip(runs[a], runs[b], strict=True))
        return (
            f"{statistics.median(per_round):.2f}x (rounds {per_round[0]:.2f}-{per_round[-1]:.2f})"
        )

    print(
        f"  median ratio per round: uncached / bare 1 read {ratio('uncached', 'bare 1 read')}, "
        f"cached / bare hello {ratio('cached 5s', 'bare hello')} (each held to >= 0.8)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=2, help="per target and round")
    parser.add_argument("--rounds", type=int, default=9)
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
