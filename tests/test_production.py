"""The production shape without Docker: the processes docker-compose runs (migrate, the API under
gunicorn, the scheduler), started separately against a real PostgreSQL database and sharing a
model directory, with `stockcast run-now` from a fourth process and the forecast read over HTTP.
Also: the compose file itself has its services wired as documented."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STOCKCAST = str(Path(sys.executable).parent / "stockcast")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, dict, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.load(r), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), dict(exc.headers)


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


@pytest.fixture
def prod_env(fresh_pg_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": fresh_pg_url,
        "STOCKCAST_DATA_DIR": str(tmp_path / "shared"),  # the volume scheduler and api share
        "STOCKCAST_TICKERS": "GOOG",
        "STOCKCAST_LSTM_UNITS": "8,4",
        "STOCKCAST_EPOCHS": "3",
        "STOCKCAST_BACKTEST_DAYS": "120",  # mechanics, not skill: one short backtest fold
        "STOCKCAST_BACKTEST_REFIT_EVERY": "120",
        "STOCKCAST_LOG_FORMAT": "json",
    }


@pytest.fixture
def services(prod_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """migrate (one-shot), then api and scheduler as long-running processes."""
    migrate = subprocess.run(
        [STOCKCAST, "db", "upgrade"], env=prod_env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    api_log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - closed below
    scheduler_log = open(tmp_path / "scheduler.log", "wb")  # noqa: SIM115 - closed below
    api = subprocess.Popen(
        [STOCKCAST, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=prod_env, stdout=api_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    scheduler = subprocess.Popen(
        [STOCKCAST, "scheduler", "--no-catch-up"],
        env=prod_env, stdout=scheduler_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if get(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert api.poll() is None, (tmp_path / "api.log").read_text()
            time.sleep(0.2)
        else:
            pytest.fail("the API never became ready")
        yield base, scheduler
    finally:
        codes = (stop(scheduler), stop(api))
        api_log.close()
        scheduler_log.close()
        assert codes[0] == 0, (tmp_path / "scheduler.log").read_text()


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_share_postgres_and_models(
    services: tuple[str, subprocess.Popen], prod_env: dict[str, str], tmp_path: Path
) -> None:
    base, scheduler = services
    status, body, _ = get(f"{base}/readyz")
    assert status == 200 and body["database"] == "postgresql"
    status, body, _ = get(f"{base}/v1/forecasts/GOOG")
    assert status == 404 and body["error"]["code"] == "unknown_ticker"

    run = subprocess.run(
        [STOCKCAST, "run-now", "GOOG"], env=prod_env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    # the default scope: one universe step fits and registers, then GOOG's forecast step
    assert "GOOG: succeeded" in run.stdout and "1 ticker(s) registered" in run.stdout

    status, body, headers = get(f"{base}/v1/forecasts/GOOG")
    assert status == 200, body
    assert body["as_of"] == "2013-03-01" and body["target_date"] == "2013-03-04"
    assert body["model"]["version"] == 1 and body["model"]["status"] == "champion"
    assert body["model"]["scope"] == "universe"
    assert body["interval"]["low"] < body["predicted_close"] < body["interval"]["high"]
    # the served weights saw the last stored day; the skill claim is a rolling-origin backtest
    model, backtest = body["model"], body["model"]["backtest"]
    assert model["trained_through"] == "2013-03-01"
    assert backtest["scheme"] == "rolling-origin" and backtest["n_forecasts"] == 120
    assert backtest["end"] == "2013-03-01" and 0 <= backtest["dm_best_pvalue"] <= 1
    # 120 backtest forecasts are too little evidence: the best baseline serves, and says so
    assert body["method"] == model["method"] == backtest["best_baseline"]
    assert "too little evidence" in body["method_reason"]
    assert headers["Content-Type"] == "application/json" and headers["ETag"]
    status, body, _ = get(f"{base}/v1/runs")
    assert status == 200 and body["runs"][0]["status"] == "succeeded"
    assert body["runs"][0]["steps"][0]["ticker"] == "GOOG"
    assert scheduler.poll() is None  # the scheduler process is up beside them
    log = (tmp_path / "scheduler.log").read_text()
    assert '"msg": "scheduler started"' in log


SERVICES = {"postgres", "redis", "migrate", "api", "scheduler", "worker"}


def test_compose_file_has_the_services_wired() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == SERVICES
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "scheduler", "worker"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
    for name in ("scheduler", "worker"):  # the scheduler queues tickers, the workers train them
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["environment"]["STOCKCAST_EXECUTOR"] == "celery"
        assert services[name]["environment"]["STOCKCAST_BROKER_URL"] == "redis://redis:6379/0"
    assert services["worker"]["command"][:2] == ["stockcast", "worker"]
    assert services["migrate"]["command"] == ["stockcast", "db", "upgrade"]
    assert services["scheduler"]["command"] == ["stockcast", "scheduler"]
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "healthcheck" in services["postgres"]
    # no shared disk: models live in the database, so no service but postgres has a volume
    for name in SERVICES - {"postgres"}:
        assert "volumes" not in services[name], name
    assert set(compose["volumes"]) == {"pgdata"}
    # no default database password: compose refuses to start without one in .env
    text = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD:-" not in text and text.count("POSTGRES_PASSWORD:?") == 2
    assert not any("PASSWORD=" in line for line in (ROOT / ".env.example").read_text().splitlines()
                   if not line.startswith("#") and "change-me" not in line)  # fmt: skip
    docker_compose = shutil.which("docker-compose")
    if docker_compose:  # Debian's docker-compose validates without a Docker engine
        out = subprocess.run(
            [docker_compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "POSTGRES_PASSWORD": "test-only"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert set(out.stdout.split()) == SERVICES
