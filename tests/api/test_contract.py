"""The OpenAPI document validates, a schema-driven fuzz finds no 500s or schema violations, and
the app really serves under gunicorn over loopback HTTP."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from apidata import seed
from flask import Flask
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

import api.queries as queries
import api.schemas as schemas
from api import create_app
from api.openapi import REF_TEMPLATE, build_spec
from forecaster import migrate, policy, storage
from forecaster.settings import Settings


def test_openapi_document_validates() -> None:
    validate(build_spec())


def test_components_are_the_models_schemas() -> None:
    """One source: every response body's component is its pydantic model's JSON Schema, and the
    enumerations are the lists their owning modules define."""
    components = build_spec()["components"]["schemas"]
    for model in schemas.RESPONSES:
        generated = model.model_json_schema(ref_template=REF_TEMPLATE)
        for name, sub in generated.pop("$defs", {}).items():
            assert components[name] == sub
        assert components[model.__name__] == generated
    props = {name: c.get("properties", {}) for name, c in components.items()}
    assert props["Run"]["status"]["enum"] == list(storage.RUN_STATUSES)
    assert props["Step"]["status"]["enum"] == list(storage.STEP_STATUSES)
    assert props["ModelSummary"]["status"]["enum"] == list(storage.MODEL_STATUSES)
    assert props["Forecast"]["method"]["enum"] == list(policy.METHODS)
    assert props["Backtest"]["best_baseline"]["enum"] == list(policy.BASELINES)


def test_query_parameters_are_the_query_models() -> None:
    spec = build_spec(max_limit=250)
    ops = {path: item["get"] for path, item in spec["paths"].items()}
    models = {
        "/v1/tickers": queries.TickerQuery,
        "/v1/forecasts/{ticker}/history": queries.HistoryQuery,
        "/v1/prices/{ticker}": queries.PriceQuery,
        "/v1/summary": queries.SummaryQuery,
        "/v1/series/{ticker}": queries.SeriesQuery,
        "/v1/runs": queries.RunQuery,
    }
    for path, model in models.items():
        params = [p for p in ops[path].get("parameters", []) if p["in"] == "query"]
        assert [p["name"] for p in params] == list(model.model_fields), path
    limits = {p["name"]: p["schema"] for p in ops["/v1/prices/{ticker}"]["parameters"]}
    assert limits["limit"] == {"type": "integer", "minimum": 1, "maximum": 250, "default": 100}
    assert not [p for p in ops["/v1/forecasts/{ticker}"]["parameters"] if p["in"] == "query"]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> object:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = storage.make_engine(url)
    seed(storage.make_session_factory(engine), gspc_forecast=True)
    return create_app(Settings(database_url=url, data_dir=path.parent), engine)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::Warning")
def test_schema_fuzz(fuzz_app: object) -> None:
    """Every operation, positive and negative generated inputs: no 500s, responses match the schema."""
    api = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 11
    for operation, mode in itertools.product(operations, GenerationMode):
        if mode is GenerationMode.NEGATIVE and not list(operation.iter_parameters()):
            continue  # nothing to make invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=40,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            # start > end is schema-valid (OpenAPI cannot relate two parameters) yet correctly a
            # documented 400, so "valid data must be accepted" cannot hold; every other check runs.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        fuzz()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_server(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'http.db'}"
    migrate.upgrade(url)
    engine = storage.make_engine(url)
    seed(storage.make_session_factory(engine), gspc_forecast=True)
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STOCKCAST_DATA_DIR": str(tmp_path),
        "STOCKCAST_LOG_FORMAT": "json",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [
            str(gunicorn),
            "api.wsgi:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "2",
            "--no-control-socket",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(
                        proc.stderr.read().decode() if proc.stderr else "gunicorn died"
                    ) from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.mark.slow
def test_real_http_under_gunicorn(gunicorn_server: str) -> None:
    with urllib.request.urlopen(f"{gunicorn_server}/v1/forecasts/%5EGSPC", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Cache-Control"].startswith("public, max-age=")
        etag = r.headers["ETag"]
        body = json.load(r)
    assert body["ticker"] == "^GSPC" and body["target_date"] == "2019-01-02"
    assert body["interval"]["low"] < body["predicted_close"] < body["interval"]["high"]
    request = urllib.request.Request(
        f"{gunicorn_server}/v1/forecasts/%5EGSPC", headers={"If-None-Match": etag}
    )
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request, timeout=5)
    assert not_modified.value.code == 304
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{gunicorn_server}/v1/forecasts/NOPE", timeout=5)
    assert missing.value.code == 404
    assert json.load(missing.value)["error"]["code"] == "unknown_ticker"
    with urllib.request.urlopen(f"{gunicorn_server}/readyz", timeout=5) as r:
        assert json.load(r)["status"] == "ready"


def test_the_document_describes_exactly_the_api_routes(app: Flask) -> None:
    """Generated from the route table: every Flask rule but the pages, the docs and static files
    has its operation, and no operation lacks its rule."""
    pages = {"/", "/tickers/<path:symbol>", "/openapi.json", "/docs"}
    pages |= {"/assets/<path:filename>", "/static/<path:filename>"}
    rules = {r.rule for r in app.url_map.iter_rules() if r.rule not in pages}
    documented = {path.replace("{", "<").replace("}", ">") for path in build_spec()["paths"]}
    assert rules == documented
