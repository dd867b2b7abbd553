"""Every endpoint and every error case, with Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from forecaster import migrate
from forecaster.settings import Settings


def get(client: FlaskClient, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = client.get(url, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    return response.get_json()


def assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert "Traceback" not in body["error"]["message"]


def test_tickers(client: FlaskClient) -> None:
    body = get(client, "/v1/tickers")
    by = {t["ticker"]: t for t in body["tickers"]}
    assert by["GOOG"]["champion_version"] == 2
    assert by["GOOG"]["last_date"] == "2013-03-01"
    assert by["GOOG"]["last_close"] == pytest.approx(806.19)
    assert by["^GSPC"]["champion_version"] is None
    assert by["^GSPC"]["rows"] == 19


def test_latest_forecast(client: FlaskClient) -> None:
    body = get(client, "/v1/forecasts/GOOG")
    assert body["ticker"] == "GOOG"
    assert body["as_of"] == "2013-03-01"
    assert body["target_date"] == "2013-03-04"
    assert body["last_close"] == pytest.approx(806.19)
    assert body["persistence_forecast"] == body["last_close"]
    assert body["interval"]["low"] < body["predicted_close"] < body["interval"]["high"]
    assert body["interval"]["coverage"] == 0.9
    assert body["model"]["version"] == 2
    assert body["model"]["mae_ratio_vs_persistence"] == pytest.approx(0.98)
    # a version from before the rolling-origin backtest: served by its network, no backtest
    assert body["method"] == body["model"]["method"] == "lstm"
    assert body["model"]["backtest"] is None and body["model"]["trained_through"] is None
    assert body["created_at"].endswith("+00:00")
    # lower-case symbols are accepted; ^ must be URL-encoded
    assert get(client, "/v1/forecasts/goog")["ticker"] == "GOOG"


def test_forecast_caching_headers_and_304(client: FlaskClient) -> None:
    first = client.get("/v1/forecasts/GOOG")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, max-age=60"
    again = client.get("/v1/forecasts/GOOG", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""


def test_forecast_404s(client: FlaskClient) -> None:
    assert_error(get(client, "/v1/forecasts/AAPL", 404), "unknown_ticker")
    assert_error(get(client, "/v1/forecasts/%5EGSPC", 404), "no_forecast")
    # an encoded slash splits the path: no route matches, the view never sees it
    assert_error(get(client, "/v1/forecasts/..%2F..%2Fetc", 404), "not_found")


@pytest.mark.parametrize("bad", ["BAD$", "a%20b", "X" * 30, ".."])
def test_malformed_ticker_is_400(client: FlaskClient, bad: str) -> None:
    body = get(client, f"/v1/forecasts/{bad}", 400)
    assert_error(body, "invalid_ticker")
    assert body["error"]["message"].startswith("malformed ticker symbol ")


def test_history_joins_actuals_and_paginates(client: FlaskClient) -> None:
    body = get(client, "/v1/forecasts/GOOG/history")
    assert body["total"] == 6 and body["next_offset"] is None
    newest, older = body["forecasts"][0], body["forecasts"][1]
    assert newest["actual_close"] is None and newest["error"] is None  # target not known yet
    assert older["target_date"] == "2013-03-01"
    assert older["actual_close"] == pytest.approx(806.19)
    assert older["error"] == pytest.approx(older["predicted_close"] - 806.19, abs=1e-3)
    assert older["within_interval"] is True
    page = get(client, "/v1/forecasts/GOOG/history?limit=2&offset=2")
    assert len(page["forecasts"]) == 2 and page["next_offset"] == 4
    ranged = get(client, "/v1/forecasts/GOOG/history?start=2013-02-26&end=2013-02-27")
    assert [f["as_of"] for f in ranged["forecasts"]] == ["2013-02-27", "2013-02-26"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("start=2013-13-01", "bad_date"),
        ("end=yesterday", "bad_date"),
        ("start=2013-03-01&end=2013-02-01", "bad_date_range"),
        ("limit=0", "bad_parameter"),
        ("limit=100000", "bad_parameter"),
        ("limit=ten", "bad_parameter"),
        ("offset=-1", "bad_parameter"),
        ("sort=asc", "bad_parameter"),
        ("limit=1&limit=2", "bad_parameter"),
        # only plain ASCII digits are integers; only YYYY-MM-DD is a date
        ("limit=5_0", "bad_parameter"),
        ("limit=%2B5", "bad_parameter"),
        ("limit=%D9%A5", "bad_parameter"),  # Arabic-Indic five
        ("limit=%205", "bad_parameter"),
        ("start=20130201", "bad_date"),
    ],
)
def test_history_bad_parameters(client: FlaskClient, query: str, code: str) -> None:
    assert_error(get(client, f"/v1/forecasts/GOOG/history?{query}", 400), code)


@pytest.mark.parametrize(
    "url",
    [
        "/v1/forecasts/GOOG/history?limit={limit}",
        "/v1/forecasts/GOOG/history?start=%7Bmessage%7D",
        "/v1/prices/GOOG?end=2013-02-30",
        "/v1/tickers?tracked=1",
        "/v1/tickers?q=%7B%7D",
        "/v1/summary?limit=-1",
        "/v1/series/GOOG?limit=20001",
        "/v1/runs?ticker=%20GOOG",
        "/v1/runs?offset=10000001",
        "/v1/models/GOOG?limit=1",
    ],
)
def test_query_errors_never_show_the_validators_wording(client: FlaskClient, url: str) -> None:
    """The query models fail with the API's own one-line messages, never pydantic's."""
    body = get(client, url, 400)
    message = body["error"]["message"]
    assert body["error"]["code"] in ("bad_parameter", "bad_date", "invalid_ticker")
    assert "\n" not in message and len(message) < 200
    for leak in ("pydantic", "validation error", "Input should", "type=", "For further"):
        assert leak not in message


@pytest.mark.parametrize("name", ["limit", "start", "x" * 3000])
def test_echoed_input_is_bounded(client: FlaskClient, name: str) -> None:
    body = get(client, f"/v1/forecasts/GOOG/history?{name}={'9' * 3000}", 400)
    assert len(body["error"]["message"]) < 200


def test_history_unknown_ticker(client: FlaskClient) -> None:
    assert_error(get(client, "/v1/forecasts/MSFT/history", 404), "unknown_ticker")


def test_models(client: FlaskClient) -> None:
    body = get(client, "/v1/models/GOOG")
    assert body["champion_version"] == 2
    assert [(m["version"], m["status"], m["champion"]) for m in body["models"]] == [
        (3, "rejected", False),
        (2, "champion", True),
        (1, "retired", False),
    ]
    assert body["models"][0]["rejection_reason"] == "worse"
    assert body["models"][1]["mae_ratio_vs_persistence"] == pytest.approx(0.98)
    assert_error(get(client, "/v1/models/MSFT", 404), "unknown_ticker")
    assert_error(get(client, "/v1/models/GOOG?x=1", 400), "bad_parameter")


def test_prices(client: FlaskClient) -> None:
    newest = get(client, "/v1/prices/GOOG?limit=3")
    assert [p["date"] for p in newest["prices"]] == ["2013-02-27", "2013-02-28", "2013-03-01"]
    assert newest["truncated"] is True
    ranged = get(client, "/v1/prices/GOOG?start=2013-02-01&end=2013-02-05")
    assert [p["date"] for p in ranged["prices"]] == ["2013-02-01", "2013-02-04", "2013-02-05"]
    assert ranged["truncated"] is False
    row = ranged["prices"][0]
    assert set(row) == {
        "date",
        "open",
        "high",
        "low",
        "close",
        "adj_close",
        "volume",
        "source",
        "adjusted",
    }
    assert_error(
        get(client, "/v1/prices/GOOG?start=2013-02-05&end=2013-02-01", 400), "bad_date_range"
    )
    assert_error(get(client, "/v1/prices/GOOG?limit=1001", 400), "bad_parameter")
    assert_error(get(client, "/v1/prices/NOPE", 404), "unknown_ticker")


def test_runs(client: FlaskClient) -> None:
    body = get(client, "/v1/runs")
    assert body == {"total": 0, "limit": 20, "offset": 0, "runs": []}
    assert_error(get(client, "/v1/runs?limit=500", 400), "bad_parameter")


def test_runs_publish_codes_and_short_messages_never_internals(
    client: FlaskClient, sessions: sessionmaker[Session], env: dict[str, str]
) -> None:
    from click.testing import CliRunner

    from cli.main import cli
    from forecaster import storage

    secret_path = "/srv/stockcast/models/GOOG/v0002-1a2b3c4d"
    sql = "(psycopg.errors.AdminShutdown) SELECT prices.close FROM prices WHERE ticker_id = 7"
    with sessions.begin() as s:
        run = storage.JobRun(
            kind="pipeline",
            trigger="cli",
            status="partial",
            host="db-internal-7.example",
            pid=4242,
            tickers=["GOOG", "^GSPC", "AAPL"],
        )
        s.add(run)
        s.flush()
        s.add_all(
            [
                storage.JobStep(
                    run_id=run.id,
                    ticker="GOOG",
                    status="failed",
                    error=f"model artifact {secret_path} is missing",
                    error_code="model_artifact_error",
                ),
                storage.JobStep(
                    run_id=run.id,
                    ticker="^GSPC",
                    status="failed",
                    error=f"database unavailable: {sql}",
                    error_code="database_unavailable",
                ),
                storage.JobStep(
                    run_id=run.id,
                    ticker="AAPL",
                    status="failed",
                    error="AAPL: 41 stored trading days, at least 67 are needed to train and evaluate",
                    error_code="insufficient_history",
                ),
            ]
        )
    response = client.get("/v1/runs")
    text = response.get_data(as_text=True)
    for secret in (secret_path, "SELECT", "psycopg", "db-internal-7"):
        assert secret not in text

    def fields(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:  # (key, leaf value)
        if isinstance(node, dict):
            for name, value in node.items():
                yield name, name
                yield from fields(value, name)
        elif isinstance(node, list):
            for item in node:
                yield from fields(item, key)
        else:
            yield key, node

    # The run's pid is in no field, nor in any text but a timestamp's microseconds, where the
    # digits 4242 may fall by chance.
    for key, value in fields(response.get_json()):
        assert value not in (4242, "pid", "host"), key
        assert key.endswith("_at") or "4242" not in str(value), key
    steps = {step["ticker"]: step for step in response.get_json()["runs"][0]["steps"]}
    assert steps["GOOG"]["error_code"] == "model_artifact_error"
    assert steps["GOOG"]["error"].startswith("a model artifact could not be read or written")
    assert steps["^GSPC"]["error"].startswith("the database was unavailable")
    assert steps["AAPL"]["error"].startswith("AAPL: 41 stored trading days")  # safe: domain text
    # operators still see everything
    shown = CliRunner().invoke(cli, ["runs", "show", str(run.id)])
    assert shown.exit_code == 0, shown.output
    assert secret_path in shown.stdout and "db-internal-7.example" in shown.stdout
    assert "SELECT prices.close" in shown.stdout
    assert CliRunner().invoke(cli, ["runs", "show", "999"]).exit_code == 1


def test_health_and_readiness(client: FlaskClient, db_url: str) -> None:
    assert get(client, "/healthz") == {"status": "ok"}
    ready = get(client, "/readyz")
    assert ready["status"] == "ready" and ready["revision"] == migrate.head_revision()
    migrate.downgrade(db_url, "0001")  # a deploy whose migration has not run yet
    try:
        body = get(client, "/readyz", 503)
        assert_error(body, "migrations_pending")
        assert "run `stockcast db upgrade`" in body["error"]["message"]
        assert get(client, "/healthz") == {"status": "ok"}  # alive, just not ready
    finally:
        migrate.upgrade(db_url)


def test_head_requests_and_surrounding_whitespace(client: FlaskClient) -> None:
    head = client.head("/v1/forecasts/GOOG")
    assert head.status_code == 200 and head.get_data() == b"" and head.headers["ETag"]
    again = client.head("/v1/forecasts/GOOG", headers={"If-None-Match": head.headers["ETag"]})
    assert again.status_code == 304
    assert_error(get(client, "/v1/forecasts/%20GOOG", 400), "invalid_ticker")
    body = get(client, "/v1/forecasts/" + "A" * 200, 400)
    assert len(body["error"]["message"]) < 80  # user input is echoed, but bounded


def test_metrics(client: FlaskClient) -> None:
    client.get("/v1/forecasts/GOOG")
    client.get("/v1/forecasts/NOPE")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.get_data(as_text=True)
    assert (
        'stockcast_http_requests_total{method="GET",route="/v1/forecasts/<ticker>",status="200"'
        in text
    )
    assert 'route="/v1/forecasts/<ticker>",status="404"' in text
    assert (
        'stockcast_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/forecasts/<ticker>"'
        in text
    )
    assert 'stockcast_forecast_age_days{ticker="GOOG"}' in text


def test_docs(client: FlaskClient) -> None:
    spec = get(client, "/openapi.json")
    assert "/v1/forecasts/{ticker}" in spec["paths"]
    page = client.get("/docs")
    assert page.status_code == 200 and b"/v1/forecasts/{ticker}" in page.data
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    text = page.get_data(as_text=True)
    for field in ("method", "interval.low", "model.backtest.dm_best_pvalue", "live.demoted"):
        assert f'data-field="{field}"' in text
    assert text.count('<section class="endpoint"') == sum(len(o) for o in spec["paths"].values())


def test_every_json_response_has_an_example_that_fits_its_schema(client: FlaskClient) -> None:
    import jsonschema

    spec = get(client, "/openapi.json")
    checked = 0
    for ops in spec["paths"].values():
        for op in ops.values():
            for response in op["responses"].values():
                body = response.get("content", {}).get("application/json")
                if body is None:
                    continue
                root = {"components": spec["components"], **body["schema"]}
                jsonschema.validate(body["example"], root)
                checked += 1
    assert checked >= 20


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_other_methods_are_405(client: FlaskClient, method: str) -> None:
    response = getattr(client, method)("/v1/forecasts/GOOG")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert_error(response.get_json(), "method_not_allowed")


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    assert_error(get(client, "/v2/everything", 404), "not_found")


def test_unexpected_error_is_generic_json_500(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("forecaster.storage.ticker_overview", boom)
    response = app.test_client().get("/v1/tickers")
    assert response.status_code == 500
    body = response.get_json()
    assert_error(body, "internal_error")
    assert "secret" not in response.get_data(as_text=True)


def test_database_down_is_503(settings: Settings) -> None:
    down = create_app(
        Settings(
            database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", data_dir=settings.data_dir
        )
    )
    client = down.test_client()
    assert_error(get(client, "/v1/forecasts/GOOG", 503), "database_unavailable")
    assert client.get("/v1/forecasts/GOOG").headers["Retry-After"] == "5"
    assert_error(get(client, "/readyz", 503), "database_unavailable")
    assert get(client, "/healthz") == {"status": "ok"}
    assert client.get("/metrics").status_code == 200


def test_latest_forecast_micro_cache(
    app: Flask, settings: Settings, engine: Any, sessions: Any
) -> None:
    """A worker replays a forecast it sent for at most STOCKCAST_API_RESPONSE_TTL seconds (on an
    injected clock); errors are never cached, so a ticker's first forecast shows up at once."""

    from sqlalchemy import update

    from api.cache import ResponseCache
    from forecaster import storage

    now = [1000.0]
    cached = create_app(settings.replace(api_response_ttl=5), engine)
    cached.extensions["stockcast"].responses = ResponseCache(5, clock=lambda: now[0])
    client = cached.test_client()
    assert_error(get(client, "/v1/forecasts/%5EGSPC", 404), "no_forecast")  # not cached
    before = get(client, "/v1/forecasts/GOOG")["predicted_close"]
    with sessions.begin() as s:
        s.execute(update(storage.Prediction).values(predicted_close=123.0))
    now[0] += 4.9
    assert get(client, "/v1/forecasts/GOOG")["predicted_close"] == before  # within the TTL
    now[0] += 0.2
    assert get(client, "/v1/forecasts/GOOG")["predicted_close"] == 123.0  # refreshed after it
    fresh = create_app(settings.replace(api_response_ttl=0), engine).test_client()
    with sessions.begin() as s:
        s.execute(update(storage.Prediction).values(predicted_close=124.0))
    assert get(fresh, "/v1/forecasts/GOOG")["predicted_close"] == 124.0  # TTL 0: no cache

    bounded = ResponseCache(60, max_entries=3)
    for i in range(10):
        bounded.put(f"T{i}", b"x")
    assert len(bounded._items) <= 3 and bounded.get("T9") == b"x"
    by_bytes = ResponseCache(60, max_bytes=1000, size=len)  # a ranged series can be ~550 KB
    for i in range(10):
        by_bytes.put(f"T{i}", b"x" * 300)
        assert sum(len(v[1]) for v in by_bytes._items.values()) <= 1000
    by_bytes.put("T9", b"y" * 100)  # replacing an entry counts its new size only
    assert by_bytes.get("T9") == b"y" * 100 and by_bytes._bytes <= 1000


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_deleted_or_replaced_sqlite_file_is_never_served(client: FlaskClient, db_url: str) -> None:
    from pathlib import Path

    from forecaster import storage

    path = storage.sqlite_file(db_url)
    assert path is not None
    assert get(client, "/v1/forecasts/GOOG")["ticker"] == "GOOG"  # now in the response cache
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert_error(get(client, "/readyz", 503), "database_unavailable")
    assert_error(get(client, "/v1/forecasts/GOOG", 503), "database_unavailable")  # not cached
    assert get(client, "/healthz") == {"status": "ok"}  # the process is alive
    migrate.upgrade(db_url)  # a new, empty database at the same path
    assert get(client, "/readyz")["status"] == "ready"
    assert get(client, "/v1/tickers")["tickers"] == []  # the new file's data, not the old one's
    assert_error(get(client, "/v1/forecasts/GOOG", 404), "unknown_ticker")


def test_double_slashes_are_a_json_404_not_a_redirect(client: FlaskClient) -> None:
    for path in ("/v1/forecasts//history", "//v1/tickers", "/v1/models//"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
