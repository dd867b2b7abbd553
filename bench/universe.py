"""What a night of the whole universe costs: N synthetic tickers (SYN-RW-1..N) through the real
pipeline on the local pool or on Celery workers, with 1, 2, ... workers, side by side.

For each worker count, on a fresh copy of the same database:
- cold night: every ticker trained from scratch (rolling-origin backtest + refit);
- quiet night: one new trading day arrived; the backtest still holds, one refit per ticker.

Printed per night: wall time, tickers/minute, per-ticker step p50/p95, per-ticker overhead (step
wall time minus time spent fitting networks), peak RSS per worker process, speed-up over the
first worker count.

A big universe's quiet night in ticker scope (`--clone K`, where `--scopes` defaults to ticker:
the copies were never in a universe fit): a cold night for every ticker would take hours, so
only K distinct tickers are trained cold; the other N - K are copies (CLONE00001...) of their
prices and champion version (row and artifact, as a cold night would have left them). Then
the quiet night runs for real on all N: each copy's step reuses its backtest, refits or
fine-tunes, registers a version with its artifact and stores its forecast. The copies have no
provider to fetch from (as `csv` tickers): the new day is stored before the night starts.

Run: .venv/bin/python bench/universe.py --tickers 20 --workers 1,2 --executor local
     .venv/bin/python bench/universe.py --tickers 5000 --clone 20 --workers 2
     .venv/bin/python bench/universe.py --tickers 20 --workers 2 --executor celery
(Celery: Redis on STOCKCAST_BROKER_URL, default redis://127.0.0.1:6379/0; the bench starts its
own `stockcast worker --concurrency W` on a queue of its own.) Training settings come from the
environment as in production (STOCKCAST_EPOCHS, ...); `--start` bounds each ticker's history.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from forecaster import migrate, service, storage
from forecaster.providers.synthetic import SyntheticProvider
from forecaster.settings import Settings
from jobs.pipeline import RunReport, run_pipeline

LAST = date(2018, 12, 31)  # the synthetic series' last day
BEFORE = date(2018, 12, 28)  # the trading day before it: the cold night's data end
STOCKCAST = str(Path(sys.executable).with_name("stockcast"))


def seed(url: str, symbols: list[str], start: date) -> None:
    migrate.upgrade(url)
    engine = storage.make_engine(url, timeout=30)
    sessions = storage.make_session_factory(engine)
    with sessions.begin() as s:
        for symbol in symbols:
            service.backfill_ticker(s, SyntheticProvider(), symbol, start, BEFORE)
    engine.dispose()


def clone(url: str, sources: list[str], count: int) -> list[str]:
    """`count` copies of the trained `sources`, round robin: prices, champion and artifact."""
    from sqlalchemy import inspect as sa_inspect

    engine = storage.make_engine(url, timeout=30)
    sessions = storage.make_session_factory(engine)
    columns = [c.key for c in sa_inspect(storage.ModelVersion).column_attrs if c.key != "id"]
    names = [f"CLONE{n:05d}" for n in range(1, count + 1)]
    with sessions.begin() as s:
        originals = []
        for symbol in sources:
            row = storage.get_ticker(s, symbol)
            assert row is not None
            version = storage.champion(s, row.id)
            assert version is not None
            stored = s.get_one(storage.ModelArtifact, version.id)
            originals.append((storage.load_prices(s, row.id), version, stored))
        for n, name in enumerate(names):
            prices, version, stored = originals[n % len(originals)]
            ticker = storage.get_or_create_ticker(s, name, "csv")
            storage.upsert_prices(s, ticker, prices, source="csv", adjusted=False)
            copy = storage.ModelVersion(**{c: getattr(version, c) for c in columns})
            copy.ticker_id = ticker.id
            s.add(copy)
            s.flush()
            s.add(
                storage.ModelArtifact(
                    model_version_id=copy.id,
                    sha256=stored.sha256,
                    size=stored.size,
                    network=stored.network,
                    shared_sha256=stored.shared_sha256,  # universe scope: the fit's ensemble
                    meta=stored.meta,
                )
            )
    engine.dispose()
    return names


def new_day_for_clones(url: str, sources: list[str], clones: list[str]) -> None:
    """The quiet night's new day, stored for the copies (the sources fetch theirs)."""
    engine = storage.make_engine(url, timeout=30)
    with storage.make_session_factory(engine).begin() as s:
        days = [SyntheticProvider().fetch(symbol, LAST, LAST) for symbol in sources]
        for n, name in enumerate(clones):
            ticker = storage.get_ticker(s, name)
            assert ticker is not None
            frame = days[n % len(days)]
            storage.upsert_prices(s, ticker, frame, source="csv", adjusted=False)
    engine.dispose()


def database_mib(url: str) -> float:
    path = Path(url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(
    label: str, night: tuple[RunReport, dict[str, float]], workers: int, base: float | None
) -> float:
    report, durations = night
    steps = report.steps
    failed = [o for o in steps if o.status != "succeeded"]
    wall = report.seconds
    seconds = [durations.get(o.ticker, 0.0) for o in steps]
    overhead = [s - (o.fit_seconds or 0.0) for s, o in zip(seconds, steps, strict=True)]
    # Wall time per ticker and worker minus fitting: what the step's own clock cannot see too
    # (a fresh process's start and TensorFlow import before the step begins).
    per_ticker = wall * workers / max(1, len(steps)) - statistics.fmean(
        [o.fit_seconds or 0.0 for o in steps] or [0.0]
    )
    rss = getattr(report.executor, "peak_rss", {}) or {}
    speed = f"{base / wall:.2f}x" if base else "1.00x"
    print(
        f"  {label:<6} workers={workers}  wall {wall:7.1f}s  {60 * len(steps) / wall:6.1f} tickers/min"
        f"  step p50 {pct(seconds, 0.5):5.1f}s p95 {pct(seconds, 0.95):5.1f}s"
        f"  overhead p50 {pct(overhead, 0.5):4.2f}s (wall/ticker {per_ticker:4.2f}s)"
        f"  speed-up {speed}" + (f"  FAILED {len(failed)}: {failed[0].error}" if failed else "")
    )
    if rss:
        print(
            "         peak RSS per worker process (MiB): "
            + ", ".join(f"{v:.0f}" for v in sorted(rss.values()))
            + f"  ({len(rss)} processes)"
        )
    return wall


def timed_run(
    settings: Settings, symbols: list[str], workers: int, today: date
) -> tuple[RunReport, dict[str, float]]:
    """One night; each step's recorded wall time (handed out to reported) by ticker."""
    engine = storage.make_engine(settings.resolved_database_url, timeout=30)
    try:
        report = run_pipeline(
            settings, symbols, workers=workers, today=today, trigger="bench", engine=engine
        )
        with storage.make_session_factory(engine)() as s:
            run = s.get(storage.JobRun, report.run_id)
            assert run is not None
            seconds: dict[str, float] = {}
            for step in run.steps:  # universe scope: a ticker's fetch and forecast steps
                seconds[step.ticker] = seconds.get(step.ticker, 0.0) + (
                    step.duration_seconds or 0.0
                )
    finally:
        engine.dispose()
    return report, seconds


def start_celery_workers(
    settings: Settings, env: dict[str, str], workers: int
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [STOCKCAST, "worker", "--concurrency", str(workers), "--name", f"bench-{workers}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from jobs.executors.celery import app, configure

    configure(settings)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not app.control.ping(timeout=1.0):
        assert proc.poll() is None, "the Celery worker exited"
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickers", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--executor", choices=["local", "celery"], default="local")
    parser.add_argument("--start", default="2015-01-01", help="first day of each history")
    parser.add_argument("--quiet-only", action="store_true", help="time the quiet night only")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="TensorFlow threads per worker process (STOCKCAST_TF_THREADS; 0: the cores shared "
        "out, so one worker already uses every core)",
    )
    parser.add_argument(
        "--clone",
        type=int,
        default=0,
        metavar="K",
        help="train K tickers cold, copy them to the other tickers, time the quiet night of all",
    )
    parser.add_argument(
        "--scopes",
        default=None,
        help="model scopes to run in turn, e.g. universe,ticker (default: STOCKCAST_MODEL_SCOPE)",
    )
    parser.add_argument(
        "--ticker-sample",
        type=int,
        default=None,
        help="ticker scope on the first N tickers only; its nights are extrapolated to all",
    )
    parser.add_argument(
        "--max-tasks",
        type=int,
        default=None,
        help="tickers per worker process before it is replaced (1: a fresh process per ticker, "
        "as the pipeline ran before the pool)",
    )
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x]
    symbols = [f"SYN-RW-{n}" for n in range(1, (args.clone or args.tickers) + 1)]
    base_settings = Settings.from_env()
    print(
        f"{len(symbols)} synthetic tickers from {args.start}, executor {args.executor}, "
        f"{os.cpu_count()} cores; {args.max_tasks or base_settings.worker_max_tasks} tickers per "
        f"worker process; TensorFlow threads per worker {args.threads or 'cores / workers'}; "
        f"model {base_settings.model.units}, "
        f"backtest {base_settings.backtest_days} days every {base_settings.backtest_refit_every}"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        template = tmp / "template.db"
        t0 = time.perf_counter()
        seed(f"sqlite:///{template}", symbols, date.fromisoformat(args.start))
        print(f"  seeded in {time.perf_counter() - t0:.1f}s")
        # --clone measures a ticker-scope night: copies were never in a universe fit
        scopes = (args.scopes or ("ticker" if args.clone else base_settings.model_scope)).split(",")
        speed_bases: dict[str, dict[str, float]] = {}
        for scope, workers in [(scope, w) for scope in scopes for w in counts]:
            bases = speed_bases.setdefault(scope, {})  # speed-up over the first worker count
            run_dir = tmp / f"{scope}-w{workers}"
            run_dir.mkdir()
            shutil.copy(template, run_dir / "stockcast.db")
            sample = symbols
            if scope == "ticker" and args.ticker_sample:
                sample = symbols[: args.ticker_sample]
            print(f"scope {scope}: {len(sample)} tickers")
            settings = base_settings.replace(
                model_scope=scope,
                data_dir=run_dir,
                database_url=f"sqlite:///{run_dir / 'stockcast.db'}",
                executor=args.executor,
                worker_max_tasks=args.max_tasks or base_settings.worker_max_tasks,
                tf_threads=args.threads or base_settings.tf_threads,
                celery_queue=f"bench-{uuid.uuid4().hex[:6]}",
            )
            worker_proc = None
            if args.executor == "celery":
                env = {
                    **os.environ,
                    "DATABASE_URL": settings.database_url,
                    "STOCKCAST_DATA_DIR": str(run_dir),
                    "STOCKCAST_EXECUTOR": "celery",
                    "STOCKCAST_CELERY_QUEUE": settings.celery_queue,
                    "STOCKCAST_WORKER_MAX_TASKS": str(settings.worker_max_tasks),
                    "STOCKCAST_TF_THREADS": str(settings.tf_threads),
                }
                worker_proc = start_celery_workers(settings, env, workers)
            try:
                scale = len(symbols) / len(sample)
                cold = timed_run(settings, sample, workers, BEFORE)
                if args.clone:
                    t0 = time.perf_counter()
                    copies = clone(settings.database_url, sample, args.tickers - len(sample))
                    new_day_for_clones(settings.database_url, sample, copies)
                    print(
                        f"  {len(sample)} tickers trained cold, {len(copies)} copies made in "
                        f"{time.perf_counter() - t0:.0f}s"
                    )
                    sample = sample + copies
                if not args.quiet_only and not args.clone:
                    wall = describe("cold", cold, workers, bases.get("cold"))
                    bases.setdefault("cold", wall)
                    if scale > 1:
                        print(
                            f"         extrapolated to {len(symbols)} tickers: {wall * scale:.0f}s"
                        )
                quiet = timed_run(settings, sample, workers, LAST)
                wall = describe("quiet", quiet, workers, bases.get("quiet"))
                bases.setdefault("quiet", wall)
                size = database_mib(settings.database_url)
                print(
                    f"         database {size:.0f} MiB: {1000 * size / len(sample):.1f} MiB per "
                    f"1,000 tickers (prices, two versions with artifacts, forecasts, runs)"
                )
                if scale > 1:
                    print(f"         extrapolated to {len(symbols)} tickers: {wall * scale:.0f}s")
            finally:
                if worker_proc is not None:
                    worker_proc.send_signal(signal.SIGTERM)
                    worker_proc.wait(60)


if __name__ == "__main__":
    main()
