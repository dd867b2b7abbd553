"""Shared fixtures: every database test runs on SQLite and on a throwaway PostgreSQL database.

PostgreSQL: a database `stockcast_test_<random>` is created on STOCKCAST_TEST_PG_URL's server
(default 127.0.0.1:5432, user postgres), migrated once, truncated after each test, dropped at the
end. If the server is unreachable the PostgreSQL half is skipped locally, but under CI (CI=true or
STOCKCAST_REQUIRE_POSTGRES=1) the whole run fails instead. Browser tests (marker `browser`) are
held to the same rule: skipped for want of chromium locally, a failed run in CI.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from forecaster import migrate, storage
from forecaster.params import ModelParams
from forecaster.settings import Settings

# Tiny and fast: tests check mechanics, bench/accuracy.py checks skill.
TINY_MODEL = ModelParams(units=(8, 4), epochs=3, batch_size=32, patience=2)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The pytest-xdist workers share the cores, and many tests start TensorFlow processes of their
# own: one thread per pool keeps them from oversubscribing the machine (read by TensorFlow).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

PG_ADMIN_URL = os.environ.get(
    "STOCKCAST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REQUIRE_PG = IN_CI or os.environ.get("STOCKCAST_REQUIRE_POSTGRES", "") in ("1", "true")


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "no PostgreSQL here"
        return str(exc).splitlines()[0]


_PG_ERROR = _pg_reachable()


def pytest_sessionstart(session: pytest.Session) -> None:
    if _PG_ERROR and REQUIRE_PG:
        raise pytest.UsageError(
            f"PostgreSQL is required in CI but unreachable at {PG_ADMIN_URL}: {_PG_ERROR}"
        )


# Seconds a module took in CI (2 cores, 3 workers, both databases), for the ones that take
# longest: a few long tests can outweigh many short ones, and a long module that starts last
# ends the run on one worker while the others idle.
MODULE_SECONDS = {
    "test_celery.py": 245,
    "test_pipeline_processes.py": 150,
    "test_pipeline.py": 130,
    "test_celery_faults.py": 125,
    "test_kill_parent.py": 90,
    "test_forecasting_service.py": 85,
    "test_pages_browser.py": 80,
    "test_universe_scope.py": 70,
    "test_executors.py": 70,
    "test_scheduler.py": 60,
    "test_backtest.py": 55,
    "test_pooled.py": 55,
    "test_integrity.py": 45,
    "test_backtest_record.py": 40,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first (MODULE_SECONDS, else the number of slow tests), each module
    kept together: `make test` spreads whole files over its pytest-xdist workers (--dist
    loadfile), and the long ones then start at once instead of ending the run on one worker
    while the others idle."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -MODULE_SECONDS.get(item.path.name, 2 * slow[item.path]))


def _fail_run(reporter: pytest.TerminalReporter, message: str) -> None:
    """Print why and make the run exit 1: the summary hook runs after the outcome is decided."""
    reporter.write_line(message, red=True)
    if reporter._session is not None:
        reporter._session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REQUIRE_PG:
        skipped = [
            r for r in terminalreporter.stats.get("skipped", []) if "postgres" in r.nodeid.lower()
        ]
        if skipped:
            _fail_run(terminalreporter, f"ERROR: {len(skipped)} PostgreSQL test(s) skipped in CI")
    if IN_CI:
        for marker in ("browser", "redis"):
            skipped = [r for r in terminalreporter.stats.get("skipped", []) if marker in r.keywords]
            if skipped:
                _fail_run(terminalreporter, f"ERROR: {len(skipped)} {marker} test(s) skipped in CI")


@contextmanager
def throwaway_pg_database() -> Iterator[str]:
    """Create `stockcast_test_<random>` on the test server, yield its URL, drop it afterwards."""
    if _PG_ERROR:
        pytest.skip(f"PostgreSQL unreachable: {_PG_ERROR}")
    name = f"stockcast_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the session (tables truncated after each test)."""
    with throwaway_pg_database() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A new, empty (unmigrated) PostgreSQL database, dropped afterwards."""
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


TABLES = (
    "job_steps",
    "job_runs",
    "live_forecasts",
    "predictions",
    "backtest_records",
    "series_documents",
    "ticker_states",
    "model_artifacts",
    "model_versions",
    "prices",
    "corporate_actions",
    "tickers",
    "locks",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "stockcast.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_url")
    yield url
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Tiny, fast model settings on the parametrised database. Ticker scope: these tests are
    about a ticker's own training, steps and processes; universe scope (the default) has its
    own (tests/jobs/test_universe_scope.py, tests/forecaster/test_pooled.py, test_celery.py)."""
    return Settings().replace(
        model_scope="ticker",
        data_dir=tmp_path / "data",
        database_url=db_url,
        model=TINY_MODEL,
        backtest_days=120,  # one fold: one backtest fit and the served fit per training
        backtest_refit_every=120,
        log_format="text",
        # A loaded 2-core machine can stall a statement for seconds: tests that are about
        # deadlines set their own.
        db_timeout_seconds=10,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = storage.make_engine(settings.resolved_database_url, timeout=settings.db_timeout_seconds)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return storage.make_session_factory(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s
        s.rollback()


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for the CLI / app factory pointing at the test database and data dir."""
    values = {
        "DATABASE_URL": settings.resolved_database_url,
        "STOCKCAST_DATA_DIR": str(settings.data_dir),
        "STOCKCAST_LSTM_UNITS": ",".join(str(u) for u in settings.model.units),
        "STOCKCAST_EPOCHS": str(settings.model.epochs),
        "STOCKCAST_BATCH_SIZE": str(settings.model.batch_size),
        "STOCKCAST_PATIENCE": str(settings.model.patience),
        "STOCKCAST_BACKTEST_DAYS": str(settings.backtest_days),
        "STOCKCAST_BACKTEST_REFIT_EVERY": str(settings.backtest_refit_every),
        "STOCKCAST_LOG_FORMAT": "text",
        "STOCKCAST_MODEL_SCOPE": settings.model_scope,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values
