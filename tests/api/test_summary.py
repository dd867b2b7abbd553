"""GET /v1/summary, /v1/series/<ticker>, /v1/runs?ticker= and the HTML pages, with Flask's test
client on SQLite and PostgreSQL (the browser suite is tests/pages/test_pages_browser.py)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from forecaster import calendar, storage
from forecaster.settings import Settings


def get(client: FlaskClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_summary_rows(client: FlaskClient) -> None:
    body = get(client, "/v1/summary")
    assert body["total"] == 2 and body["next_offset"] is None
    assert date.fromisoformat(body["last_session"]) < date.today()
    goog, gspc = body["tickers"]  # sorted by symbol
    assert goog["ticker"] == "GOOG" and gspc["ticker"] == "^GSPC"
    assert goog["last_date"] == "2013-03-01" and goog["last_close"] == pytest.approx(806.19)
    assert len(goog["recent_closes"]) == 20 and goog["recent_closes"][-1] == goog["last_close"]
    forecast = goog["forecast"]
    assert forecast["as_of"] == "2013-03-01" and forecast["target_date"] == "2013-03-04"
    assert forecast["predicted_change_pct"] == pytest.approx(0.2)
    assert forecast["interval"]["low"] < forecast["predicted_close"] < forecast["interval"]["high"]
    assert forecast["method"] == "lstm"
    # a legacy version (no backtest): the stored ratio, no DM test
    assert goog["skill"]["model_version"] == 2 and goog["skill"]["mae_ratio"] == 0.98
    assert goog["skill"]["dm_pvalue"] is None
    fresh = goog["freshness"]
    assert fresh["stale"] is True and fresh["behind_data"] is False
    assert fresh["sessions_behind"] == calendar.sessions_between(
        date(2013, 3, 1), date.fromisoformat(body["last_session"])
    )
    assert goog["last_run"] is None
    # ^GSPC: prices, no model, no forecast
    assert gspc["forecast"] is None and gspc["skill"] is None
    assert gspc["freshness"]["stale"] is True and gspc["freshness"]["sessions_behind"] is None
    assert len(gspc["recent_closes"]) == 19


def test_summary_search_and_pages(client: FlaskClient) -> None:
    assert [t["ticker"] for t in get(client, "/v1/summary?q=gsp")["tickers"]] == ["^GSPC"]
    assert [t["ticker"] for t in get(client, "/v1/summary?q=%5E")["tickers"]] == ["^GSPC"]
    assert get(client, "/v1/summary?q=%25")["total"] == 0  # LIKE wildcards are literal
    assert get(client, "/v1/summary?q=_")["total"] == 0
    first = get(client, "/v1/summary?limit=1")
    assert first["next_offset"] == 1 and [t["ticker"] for t in first["tickers"]] == ["GOOG"]
    second = get(client, "/v1/summary?limit=1&offset=1")
    assert second["next_offset"] is None and second["tickers"][0]["ticker"] == "^GSPC"
    assert get(client, "/v1/summary?offset=5")["tickers"] == []


@pytest.mark.parametrize(
    "query", ["q=%00", "q=" + "x" * 41, "limit=0", "limit=501", "offset=-1", "nope=1"]
)
def test_summary_bad_parameters(client: FlaskClient, query: str) -> None:
    assert get(client, f"/v1/summary?{query}", 400)["error"]["code"] == "bad_parameter"


def test_series_columns(client: FlaskClient) -> None:
    body = get(client, "/v1/series/GOOG?start=2013-02-20")
    closes, forecasts = body["closes"], body["forecasts"]
    assert closes["date"][0] == "2013-02-20" and closes["date"][-1] == "2013-03-01"
    assert len(closes["date"]) == len(closes["close"]) == 8
    assert forecasts["target_date"] == [
        "2013-02-25",
        "2013-02-26",
        "2013-02-27",
        "2013-02-28",
        "2013-03-01",
        "2013-03-04",
    ]
    assert all(len(v) == 6 for v in forecasts.values())
    # realized closes and errors where the target day is stored, null for the newest
    assert forecasts["actual_close"][-2] == pytest.approx(806.19)
    assert forecasts["actual_close"][-1] is None and forecasts["abs_error"][-1] is None
    k = 0
    assert forecasts["abs_error"][k] == pytest.approx(
        abs(forecasts["predicted_close"][k] - forecasts["actual_close"][k]), abs=1e-3
    )
    assert forecasts["persistence_abs_error"][k] is not None
    assert body["truncated"] is False
    limited = get(client, "/v1/series/GOOG?limit=2")
    assert limited["truncated"] is True and limited["closes"]["date"] == [
        "2013-02-28",
        "2013-03-01",
    ]
    assert get(client, "/v1/series/%5EGSPC")["forecasts"]["target_date"] == []


def test_series_errors(client: FlaskClient) -> None:
    assert get(client, "/v1/series/NOPE", 404)["error"]["code"] == "unknown_ticker"
    assert get(client, "/v1/series/GOOG?start=2013-03-01&end=2013-01-01", 400)
    assert get(client, "/v1/series/GOOG?limit=20001", 400)


def test_runs_filtered_by_ticker(client: FlaskClient) -> None:
    assert get(client, "/v1/runs?ticker=GOOG") == {
        "total": 0,
        "limit": 20,
        "offset": 0,
        "runs": [],
    }
    assert get(client, "/v1/runs?ticker=B%24D", 400)["error"]["code"] == "invalid_ticker"


def test_pages_are_html_shells(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b"<title>Dashboard" in page.data and b"/assets/dashboard.js" in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    ticker = client.get("/tickers/%5EGSPC")
    assert ticker.status_code == 200
    assert b'data-ticker="^GSPC"' in ticker.data and b"<title>^GSPC" in ticker.data
    assert b'aria-label="Daily closes of ^GSPC' in ticker.data
    assert client.get("/tickers/goog").status_code == 200  # symbols are case-insensitive
    for asset in ("vendor/uplot/uPlot.iife.min.js", "vendor/uplot/LICENSE", "ticker.js"):
        assert client.get(f"/assets/{asset}").status_code == 200


@pytest.mark.parametrize(
    "path", ["/tickers/NOPE", "/tickers/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/tickers/a/b"]
)
def test_unknown_ticker_page_is_an_escaped_html_404(client: FlaskClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 404 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "Unknown ticker" in text and "<script>alert" not in text
    if "script" in path:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize("path", ["/assets/missing.js", "/assets/vendor/nope/x.css"])
def test_a_missing_asset_is_a_404_without_a_traceback(
    client: FlaskClient, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    page = client.get(path)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "Not found" in page.get_data(as_text=True)
    assert not [r for r in caplog.records if r.exc_info]  # nothing logged as an error


def test_docs_link_the_pages(client: FlaskClient) -> None:
    docs = client.get("/docs").get_data(as_text=True)
    assert "href='/'" in docs and "href='/tickers/%5EGSPC'" in docs


def test_pages_when_the_database_is_down(settings: Settings) -> None:
    down = create_app(
        Settings(
            database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", data_dir=settings.data_dir
        )
    ).test_client()
    assert down.get("/").status_code == 200  # a shell: its script reports the API's 503
    page = down.get("/tickers/GOOG")
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert page.headers["Retry-After"] == "5"
    assert b"Database unavailable" in page.data and b"psycopg" not in page.data


def _ticker(
    s: Session, symbol: str, method: str, ratio: float, change: float, as_of: date
) -> storage.Ticker:
    """A ticker with one close, a champion serving `method` and its forecast as of `as_of`."""
    ticker = storage.get_or_create_ticker(s, symbol, "csv")
    s.add(
        storage.Price(
            ticker_id=ticker.id, date=as_of, open=10, high=10, low=10, close=10,
            adj_close=None, volume=1, source="csv", adjusted=False,
        )
    )  # fmt: skip
    mv = storage.ModelVersion(
        ticker_id=ticker.id, version=1, status="champion", config={}, train_start=as_of,
        train_end=as_of, test_start=as_of, test_end=as_of, n_train=100, train_seconds=1.0,
        mae=ratio, persistence_mae=1.0, mae_ratio=ratio, interval_halfwidth=0.1,
        interval_coverage=0.9, metrics={}, method=method,
    )  # fmt: skip
    s.add(mv)
    s.flush()
    s.add(
        storage.Prediction(
            ticker_id=ticker.id, model_version_id=mv.id, as_of_date=as_of,
            target_date=as_of + timedelta(days=1), last_close=10.0,
            predicted_close=10.0 * (1 + change), lower=9.0, upper=11.0, coverage=0.9,
            method=method,
        )
    )  # fmt: skip
    return ticker


def test_summary_sorts_filters_and_sums_up_the_universe(
    client: FlaskClient, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # the session the API calls the last one: a forecast as of it is fresh
    fresh_day = calendar.last_session_before(
        calendar.exchange_today(settings), settings.exchange_calendar
    )
    with sessions.begin() as s:
        _ticker(s, "AAA", "drift", 1.02, -0.01, fresh_day)
        zzz = _ticker(s, "ZZZ", "lstm", 0.95, 0.03, date(2018, 12, 31))
        zzz.suspect_day, zzz.suspect_note = date(2018, 12, 3), "a move"
        run = storage.JobRun(
            kind="pipeline", trigger="scheduler", status="partial", tickers=["AAA", "ZZZ"]
        )
        s.add(run)
        s.flush()
        run.finished_at = run.started_at + timedelta(seconds=90)
        s.add_all(
            [
                storage.JobStep(
                    run_id=run.id, ticker="AAA", status="failed", error_code="fetch_failed"
                ),
                storage.JobStep(run_id=run.id, ticker="ZZZ", status="succeeded"),
            ]
        )

    def tickers(query: str) -> list[str]:
        return [t["ticker"] for t in get(client, f"/v1/summary?{query}")["tickers"]]

    # GOOG 0.98 (lstm), ZZZ 0.95 (lstm), AAA 1.02 (drift), ^GSPC none: missing values last
    assert tickers("sort=mae_ratio") == ["ZZZ", "GOOG", "AAA", "^GSPC"]
    assert tickers("sort=-mae_ratio") == ["AAA", "GOOG", "ZZZ", "^GSPC"]
    assert tickers("sort=-change") == ["ZZZ", "GOOG", "AAA", "^GSPC"]
    assert tickers("sort=-as_of") == ["AAA", "ZZZ", "GOOG", "^GSPC"]
    assert tickers("sort=last_run") == ["AAA", "ZZZ", "GOOG", "^GSPC"]  # failed < succeeded
    assert tickers("method=lstm&sort=mae_ratio") == ["ZZZ", "GOOG"]
    assert tickers("status=fresh") == ["AAA"]
    assert tickers("status=stale") == ["GOOG", "ZZZ", "^GSPC"]
    assert tickers("status=suspect") == ["ZZZ"] and tickers("status=failed") == ["AAA"]
    page = get(client, "/v1/summary?method=lstm&sort=-mae_ratio&limit=1")
    assert page["total"] == 2 and page["next_offset"] == 1 and page["sort"] == "-mae_ratio"
    universe = page["universe"]  # the whole universe, whatever the filters
    night = universe.pop("last_night")
    assert universe == {
        "tickers": 4,
        "tracked": 4,
        "served_by_network": 2,
        "stale": 3,
        "failed": 1,
        "suspect": 1,
        "methods": {"lstm": 2, "drift": 1},
    }
    assert night["status"] == "partial" and night["duration_seconds"] == 90.0
    assert night["tickers"] == 2 and night["failed"] == 1 and night["trigger"] == "scheduler"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sort=price", "sort must be one of ticker, -ticker, change"),
        ("method=arima", "method must be one of lstm, persistence"),
        ("status=late", "status must be one of stale, fresh, suspect, failed, got 'late'"),
    ],
)
def test_summary_bad_sort_and_filters(client: FlaskClient, query: str, message: str) -> None:
    body = get(client, f"/v1/summary?{query}", 400)
    assert body["error"]["code"] == "bad_parameter"
    assert body["error"]["message"].startswith(message)
