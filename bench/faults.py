"""Fault-injection table: what the service does when things break, measured end to end.

Each scenario runs the real thing (the `stockcast` CLI, gunicorn, PostgreSQL through a proxy
that can freeze it) in a temporary directory and database, and prints one row:

- fuzz: random and malformed GET requests to every route under gunicorn; server errors (5xx
  other than 503) and non-JSON bodies are counted.
- frozen database: PostgreSQL behind a proxy that stops forwarding; latency of the JSON 503s
  and the time until 200s come back after the thaw.
- kill -9 of `stockcast run-now` alone, at several moments of its training child's work: how
  long the child outlives it, whether an immediate second run trains alone and succeeds, and
  whether every model version's artifact exists.
- a CSV with Infinity, four concurrent backfills of a new ticker, a SQLite file deleted while
  serving, and the public run records after failures (no paths, host names or SQL).
- data integrity: a 1:10 split on a quiet night from a provider that revises history and from
  one that does not, and a corrected row deep in the history.
- Celery on real Redis (run through the tests that inject them): a poison ticker, Redis stopped
  for 20 s mid-run, Redis down past the run's deadline, a worker process killed mid-step.

Run: .venv/bin/python bench/faults.py [--fuzz 3000] [--kill-at 1,3,6] [--db-timeout 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the freezable proxy the tests use
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from faultproxy import FreezableProxy  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from cli.serve import gunicorn_argv  # noqa: E402
from forecaster import artifacts, migrate, storage  # noqa: E402

STOCKCAST = str(Path(sys.executable).with_name("stockcast"))
PG_ADMIN = os.environ.get(
    "STOCKCAST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
FAST_MODEL = {
    "STOCKCAST_LSTM_UNITS": "8,4",
    "STOCKCAST_EPOCHS": "3",
    "STOCKCAST_PATIENCE": "2",
    "STOCKCAST_BACKTEST_DAYS": "120",
    "STOCKCAST_BACKTEST_REFIT_EVERY": "120",
    "STOCKCAST_LOG_LEVEL": "WARNING",
}
ROWS: list[tuple[str, str, str]] = []


def row(scenario: str, verdict: bool, figures: str) -> None:
    ROWS.append((scenario, "held" if verdict else "BROKE", figures))
    print(f"  {scenario:<34} {'held' if verdict else 'BROKE':<6} {figures}", flush=True)


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STOCKCAST, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        gunicorn_argv("127.0.0.1", port, 2, 4),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def get(port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- scenarios


def strict_json(body: bytes) -> bool:
    """True for a JSON body (NaN and Infinity are not JSON, though Python's parser takes them)."""

    def reject(constant: str) -> None:
        raise ValueError(constant)

    try:
        json.loads(body, parse_constant=reject)
    except ValueError:
        return False
    return True


def fuzz(env: dict[str, str], requests: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    strange = [
        "^GSPC",
        "GOOG",
        "",
        "%00",
        "A" * 3000,
        "é",
        "../../etc",
        "%ZZ",
        "1e9",
        "١٢",
        "' OR 1",
    ]
    params = ["limit", "offset", "start", "end", "since", "as_of", "status", "x", "ticker"]
    values = ["5", "-1", "0", "5_0", "+5", "١٢", "9" * 40, "2018-12-31", "2018-02-30", "", "NaN"]
    routes = [
        "/v1/tickers",
        "/v1/forecasts/{t}",
        "/v1/forecasts/{t}/history",
        "/v1/models/{t}",
        "/v1/prices/{t}",
        "/v1/runs",
        "/readyz",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/{t}",
        "/tickers/{t}",
        "/v1/forecasts//history",
    ]
    server_errors = non_json = 0
    odd: list[str] = []
    t0 = time.monotonic()
    with gunicorn(env) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests):
            ticker = urllib.parse.quote(rng.choice(strange), safe="%^")
            path = rng.choice(routes).format(t=ticker)
            query = "&".join(
                f"{rng.choice(params)}={urllib.parse.quote(rng.choice(values))}"
                for _ in range(rng.randint(0, 3))
            )
            try:
                conn.request("GET", path + ("?" + query if query else ""))
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if response.status >= 500 and response.status != 503:
                server_errors += 1
            page = path == "/" or path.startswith("/tickers/")  # HTML pages for people
            if not page and path != "/metrics" and response.status != 304 and not strict_json(body):
                non_json += 1
                odd.append(f"{response.status} {path[:40]}")
        conn.close()
    rate = requests / (time.monotonic() - t0)
    row(
        "fuzz (gunicorn, SQLite)",
        server_errors == 0 and non_json == 0,
        f"{requests} requests, {server_errors} server errors, {non_json} non-JSON, {rate:.0f} req/s"
        + (f" (e.g. {sorted(set(odd))[:3]})" if odd else ""),
    )


def frozen_database(pg_url: str, timeout: float) -> None:
    from api import create_app
    from forecaster.settings import Settings

    url = make_url(pg_url)
    with FreezableProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = Settings().replace(
            database_url=through, db_timeout_seconds=timeout, api_response_ttl=0.0
        )
        engine = storage.make_engine(through, timeout=timeout)
        client = create_app(settings, engine).test_client()
        paths = ["/v1/forecasts/GOOG", "/v1/tickers", "/v1/runs", "/readyz"]
        for path in paths:
            client.get(path)
        proxy.freeze()
        latencies, statuses = [], []
        for path in paths * 2:
            t0 = time.monotonic()
            response = client.get(path)
            latencies.append(time.monotonic() - t0)
            statuses.append((response.status_code, response.is_json))
        proxy.thaw()
        thawed = time.monotonic()
        while client.get("/v1/tickers").status_code != 200:  # GOOG has prices, no forecast
            if time.monotonic() - thawed > 30:
                break
        recovery = time.monotonic() - thawed
        engine.dispose()
    all_503 = all(s == (503, True) for s in statuses)
    odd = [f"{p} {s}" for p, s in zip(paths * 2, statuses, strict=True) if s != (503, True)]
    row(
        "frozen PostgreSQL (proxy)",
        all_503 and max(latencies) < timeout + 1 and recovery < 1,
        f"{len(statuses)} requests all JSON 503: {all_503}{' ' + str(odd) if odd else ''}; latency median "
        f"{statistics.median(latencies):.2f}s max {max(latencies):.2f}s "
        f"(timeout {timeout:g}s); 200 again {recovery * 1000:.0f} ms after the thaw",
    )


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_run_now(env: dict[str, str], url: str, at: float) -> None:
    slow = {**env, "STOCKCAST_EPOCHS": "200", "STOCKCAST_PATIENCE": "200"}
    first = subprocess.Popen(
        [STOCKCAST, "run-now", "GOOG", "--force-train"],
        env=slow,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not children_of(first.pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # the CLI imports, migrates-checks and records the run first
    time.sleep(at)
    kids = [k for k in children_of(first.pid) if b"resource_tracker" not in cmdline(k)]
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    while any(alive(k) for k in kids) and time.monotonic() - killed < 30:
        time.sleep(0.02)
    outlived = time.monotonic() - killed
    second = cli(env, "run-now", "GOOG", "--force-train")
    engine = storage.make_engine(url)
    with storage.make_session_factory(engine)() as s:
        ticker = storage.get_ticker(s, "GOOG")
        versions = storage.model_versions(s, ticker.id) if ticker else []
        stored = artifacts.sizes(s, ticker.id) if ticker else {}
        missing = [v.version for v in versions if v.id not in stored]
        champions = sum(v.status == "champion" for v in versions)
    engine.dispose()
    ok = outlived < 2 and second.returncode == 0 and not missing and champions == 1
    row(
        f"kill -9 run-now {at:g}s into its step",
        ok,
        f"{len(kids)} child(ren) gone {outlived * 1000:.0f} ms after the kill; second run "
        f"exit {second.returncode}; {champions} champion, {len(missing)} missing artifacts",
    )


def infinity_csv(env: dict[str, str], url: str, tmp: Path) -> None:
    csv = tmp / "inf.csv"
    csv.write_text(
        "date,open,high,low,close,volume\n"
        "2020-01-02,10,11,9,10.5,1000\n"
        "2020-01-03,10,Infinity,9,10.5,1000\n"
        "2020-01-06,10,1e303,9,10.5,1000\n"
        "2020-01-07,10,11,9,10.7,1000\n"
    )
    done = cli(env, "backfill", "INFT", "--provider", "csv", "--csv", str(csv))
    engine = storage.make_engine(url)
    inft = select(storage.Ticker.id).where(storage.Ticker.symbol == "INFT").scalar_subquery()
    with engine.connect() as conn:
        stored = conn.scalar(
            select(func.count()).select_from(storage.Price).where(storage.Price.ticker_id == inft)
        )
        biggest = conn.scalar(
            select(func.max(storage.Price.high)).where(storage.Price.ticker_id == inft)
        )
    engine.dispose()
    ok = done.returncode == 0 and stored == 2 and biggest is not None and biggest < 1e12
    row(
        "CSV with Infinity and 1e303",
        ok,
        f"exit {done.returncode}; {stored} of 4 rows stored, max high {biggest}; "
        f"{(done.stdout + done.stderr).strip().splitlines()[-1][:70]!r}",
    )


def concurrent_backfills(env: dict[str, str], url: str, tmp: Path, n: int = 4) -> None:
    csv = tmp / "newt.csv"
    lines = ["date,open,high,low,close,volume"]
    day = 0
    for i in range(300):
        day += 1 if i % 5 else 3
        d = time.strftime("%Y-%m-%d", time.gmtime(1577923200 + day * 86400))
        lines.append(f"{d},{10 + i * 0.01},{11 + i * 0.01},{9 + i * 0.01},{10.5 + i * 0.01},1000")
    csv.write_text("\n".join(lines) + "\n")
    procs = [
        subprocess.Popen(
            [STOCKCAST, "backfill", "NEWT", "--provider", "csv", "--csv", str(csv)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(n)
    ]
    codes = [p.wait(120) for p in procs]
    engine = storage.make_engine(url)
    with engine.connect() as conn:
        tickers = conn.scalar(
            select(func.count()).select_from(storage.Ticker).where(storage.Ticker.symbol == "NEWT")
        )
        prices = conn.scalar(
            select(func.count())
            .select_from(storage.Price)
            .join(storage.Ticker)
            .where(storage.Ticker.symbol == "NEWT")
        )
    engine.dispose()
    ok = codes == [0] * n and tickers == 1 and prices == 300
    row(
        f"{n} concurrent backfills, new ticker",
        ok,
        f"exit codes {codes}; {tickers} ticker row, {prices} price rows for 300 days",
    )


def deleted_sqlite(env: dict[str, str], db: Path) -> None:
    with gunicorn(env) as port:
        before = get(port, "/readyz")[0], get(port, "/v1/forecasts/GOOG")[0]
        for path in db.parent.glob(db.name + "*"):
            path.unlink()
        after = [get(port, "/readyz")[0], get(port, "/v1/forecasts/GOOG")[0]]
        after += [get(port, "/v1/prices/GOOG")[0] for _ in range(4)]
    ok = before == (200, 200) and all(s == 503 for s in after)
    row("SQLite file deleted while serving", ok, f"before {before}; after {after}")


def public_runs(env: dict[str, str], tmp: Path) -> None:
    with gunicorn(env) as port:
        status, body = get(port, "/v1/runs?limit=100")
    text_ = body.decode()
    leaks = [
        word
        for word in (str(tmp), socket.gethostname(), "SELECT ", "INSERT ", "Traceback", "/root")
        if word and word in text_
    ]
    row("GET /v1/runs after failures", status == 200 and not leaks, f"leaks: {leaks or 'none'}")


# --------------------------------------------------------------------------- data integrity


def split_nights(tmp: Path) -> None:
    """A 1:10 split on a quiet night for two network-served AR(0.5) tickers: one provider
    rewrites history (as Yahoo does), the other does not (a csv file)."""
    sys.path.insert(0, str(ROOT / "tests" / "jobs"))
    from test_integrity import KEPT, NIGHT_BEFORE, REVISED, SPLIT_DAY, SplittingProvider

    from forecaster.params import ModelParams
    from forecaster.settings import Settings
    from jobs.pipeline import run_pipeline

    url = f"sqlite:///{tmp / 'split.db'}"
    migrate.upgrade(url)
    settings = Settings().replace(
        model_scope="ticker",  # each ticker's step retrains it: what the split fault is about
        database_url=url,
        data_dir=tmp / "split",
        executor="inline",
        model=ModelParams(units=(8, 4), epochs=3, batch_size=32, patience=2),
        backtest_days=240,
        backtest_refit_every=120,
        min_backtest_forecasts=200,
        log_level="WARNING",
    )
    providers = {REVISED: SplittingProvider(revises=True), KEPT: SplittingProvider(revises=False)}
    engine = storage.make_engine(url)

    def night(day: object) -> dict[str, str]:
        report = run_pipeline(
            settings,
            [REVISED, KEPT],
            provider_factory=lambda symbol, _stored: providers[symbol],
            today=day,  # type: ignore[arg-type]
            engine=engine,
        )
        return {o.ticker: o.detail or "" for o in report.steps}

    night(NIGHT_BEFORE)
    for provider in providers.values():
        provider.split = True
    notes = night(SPLIT_DAY)
    sessions = storage.make_session_factory(engine)
    with sessions() as s:
        moves = {}
        for symbol in (REVISED, KEPT):
            ticker = storage.get_ticker(s, symbol)
            assert ticker is not None
            p = storage.latest_prediction(s, ticker.id)
            assert p is not None
            moves[symbol] = (p.predicted_close / p.last_close - 1, p.method, ticker.suspect_day)
    engine.dispose()
    move, method, suspect = moves[REVISED]
    full = "2-fold rolling-origin backtest" in notes[REVISED]
    row(
        "1:10 split, provider revises",
        "history_revised" in notes[REVISED] and full and abs(move) < 0.2 and suspect is None,
        f"history re-fetched and swapped, full backtest: {full}; forecast {move:+.2%} "
        f"({method}); suspect: {suspect}",
    )
    move, method, suspect = moves[KEPT]
    row(
        "1:10 split, provider keeps history",
        suspect == SPLIT_DAY and method == "persistence" and abs(move) < 1e-9,
        f"suspect since {suspect}; {method} serves ({move:+.2%}); training waits: "
        f"{'training waits' in notes[KEPT]}",
    )


def corrected_row(env: dict[str, str], url: str) -> None:
    """A close 300 days back corrected in the database (as a forced backfill of a provider's
    correction writes it): the next training must run a full backtest, not reuse the old one."""
    engine = storage.make_engine(url)
    P = storage.Price
    with engine.begin() as conn:
        goog = conn.scalar(select(storage.Ticker.id).where(storage.Ticker.symbol == "GOOG"))
        day, close = conn.execute(
            select(P.date, P.close).where(P.ticker_id == goog).order_by(P.date.desc()).offset(299)
        ).first()
        conn.execute(
            P.__table__.update()
            .where(P.ticker_id == goog, P.date == day)
            .values(close=close * 1.001, high=func.max(P.high, close * 1.001))
        )
    engine.dispose()
    night = cli(env, "run-now", "GOOG", "--force-train")
    full = "rolling-origin backtest" in night.stdout and "quiet night" not in night.stdout
    row(
        "corrected row 300 days back",
        night.returncode == 0 and full,
        f"close of {day} +0.1%; next training: {'full backtest' if full else 'backtest reused'}",
    )


def broker_faults(tmp: Path) -> None:
    """The Celery fault scenarios on real Redis and real workers are the tests that inject them
    (tests/jobs/test_celery*.py): run here, one row each, with their outcome and duration."""
    import xml.etree.ElementTree as ET

    scenarios = {
        "test_a_poison_ticker_fails_after_three_deliveries_and_the_rest_succeed": (
            "poison ticker (killed 3 times)"
        ),
        "test_redis_stopped_for_20s_mid_run_records_what_was_trained_as_succeeded": (
            "Redis stopped 20 s mid-run"
        ),
        "test_redis_down_past_the_deadline_ends_run_now_in_time_as_broker_unavailable": (
            "Redis down past the run's deadline"
        ),
        "test_a_worker_process_killed_mid_task_is_redelivered_and_completes_once": (
            "worker process SIGKILLed mid-step"
        ),
    }
    report = tmp / "celery.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         "tests/jobs/test_celery.py", "tests/jobs/test_celery_faults.py",
         "-k", " or ".join(scenarios)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    cases = {c.get("name", "").split("[")[0]: c for c in ET.parse(report).iter("testcase")}
    for name, scenario in scenarios.items():
        case = cases.get(name)
        if case is None:
            row(scenario, False, "not run")
            continue
        problem = next(
            iter(case.findall("failure") + case.findall("error") + case.findall("skipped")), None
        )
        detail = "" if problem is None else f": {(problem.get('message') or '')[:80]}"
        row(scenario, problem is None, f"{float(case.get('time', 0)):.0f} s ({name}){detail}")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fuzz", type=int, default=3000)
    parser.add_argument(
        "--kill-at", default="0,2,5", help="seconds into the step's child, comma-separated"
    )
    parser.add_argument("--db-timeout", type=float, default=2.0)
    parser.add_argument(
        "--only-frozen", action="store_true", help="only the frozen PostgreSQL scenario"
    )
    args = parser.parse_args()
    print(f"fault table on {os.cpu_count()} cores")
    if not args.only_frozen:
        sqlite_scenarios(args)
    with postgres_database() as pg:
        if pg is None:
            row("frozen PostgreSQL (proxy)", False, "PostgreSQL unreachable: not measured")
        else:
            seed_pg(pg)
            frozen_database(pg, args.db_timeout)

    print()
    print(f"| {'scenario':<34} | result | figures |")
    print(f"|{'-' * 36}|--------|---------|")
    for scenario, verdict, figures in ROWS:
        print(f"| {scenario:<34} | {verdict:<6} | {figures} |")
    sys.exit(0 if all(v == "held" for _, v, _ in ROWS) else 1)


def sqlite_scenarios(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "faults.db"
        url = f"sqlite:///{db}"
        migrate.upgrade(url)
        env = {
            **os.environ,
            **FAST_MODEL,
            "DATABASE_URL": url,
            "STOCKCAST_DATA_DIR": str(tmp / "data"),
            "STOCKCAST_TICKERS": "GOOG",
            "STOCKCAST_EXECUTOR": "local",
        }
        setup = cli(env, "backfill", "GOOG", "--provider", "sample")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        first = cli(env, "run-now", "GOOG")
        assert first.returncode == 0, first.stdout + first.stderr

        fuzz(env, args.fuzz)
        for at in (float(x) for x in args.kill_at.split(",") if x):
            kill_run_now(env, url, at)
        infinity_csv(env, url, tmp)
        corrected_row(env, url)
        split_nights(tmp)
        broker_faults(tmp)
        concurrent_backfills(env, url, tmp)
        public_runs(env, tmp)
        deleted_sqlite(env, db)


@contextmanager
def postgres_database() -> Iterator[str | None]:
    name = f"stockcast_faults_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception:
        yield None
        return
    try:
        yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_pg(url: str) -> None:
    from forecaster import service
    from forecaster.providers.sample import SampleProvider

    migrate.upgrade(url)
    engine = storage.make_engine(url)
    with storage.make_session_factory(engine).begin() as s:
        service.backfill_ticker(s, SampleProvider(), "GOOG")
    engine.dispose()


if __name__ == "__main__":
    main()
