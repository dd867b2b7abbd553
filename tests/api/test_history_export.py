"""The forecast record over HTTP: live and backtest in one history, filtered by kind, method and
date, as JSON pages or as one CSV that pandas reads with typed columns; the chart's backtest
columns in /v1/series."""

from __future__ import annotations

import io
import math
from datetime import date
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import backtest_record, forecast_record, storage

# A 4-forecast backtest of GOOG (two folds of two) made before the live forecasts' days.
DAYS = ["2013-02-04", "2013-02-05", "2013-02-06", "2013-02-07", "2013-02-08"]
RECORD = {
    "format": 1,
    "coverage": 0.9,
    "as_of": DAYS[:4],
    "target_date": DAYS[1:],
    "last_close": [760.0, 765.5, 770.25, 775.0],
    "actual_close": [765.5, 770.25, 775.0, 780.125],
    "sigma": [0.01, 0.01, 0.02, 0.02],
    "fold": [0, 0, 1, 1],
    "methods": {
        "lstm": {"predicted": [761.0, 766.0, 771.0, 776.0], "scale": [None, 1.5]},
        "persistence": {"predicted": [760.0, 765.5, 770.25, 775.0], "scale": [None, 2.0]},
        "drift": {"predicted": [760.5, 766.0, 770.75, 775.5], "scale": [None, 1.8]},
        "median_return": {"predicted": [760.2, 765.7, 770.45, 775.2], "scale": [None, 1.9]},
    },
}


@pytest.fixture
def recorded(client: FlaskClient, sessions: sessionmaker[Session]) -> FlaskClient:
    with sessions.begin() as s:
        goog = storage.get_ticker(s, "GOOG")
        assert goog is not None
        champion = storage.champion(s, goog.id)
        assert champion is not None
        champion.method = "drift"
        backtest_record.store(s, goog.id, champion.id, RECORD)
    return client


def get(client: FlaskClient, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = client.get(url, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def test_history_merges_live_and_backtest(recorded: FlaskClient) -> None:
    body = get(recorded, "/v1/forecasts/GOOG/history?limit=100").get_json()
    kinds = [f["kind"] for f in body["forecasts"]]
    assert body["total"] == 6 + 16 and kinds == ["live"] * 6 + ["backtest"] * 16
    newest = body["forecasts"][6]  # the backtest's newest day, methods in the record's order
    assert newest["as_of"] == "2013-02-07" and newest["method"] == "lstm"
    assert newest["model_version"] == 2 and newest["fold"] == 1
    assert newest["predicted_close"] == 776.0 and newest["actual_close"] == 780.125
    width = 1.5 * 0.02
    assert newest["interval"]["low"] == pytest.approx(776.0 / math.exp(width), abs=1e-6)
    assert newest["interval"]["coverage"] == 0.9 and newest["within_interval"] is True
    oldest = body["forecasts"][-1]
    assert oldest["fold"] == 0 and oldest["interval"] is None and oldest["within_interval"] is None
    only = get(recorded, "/v1/forecasts/GOOG/history?kind=backtest&method=persistence").get_json()
    assert only["total"] == 4 and {f["method"] for f in only["forecasts"]} == {"persistence"}
    assert [f["error"] for f in only["forecasts"]] == [-5.125, -4.75, -4.75, -5.5]
    ranged = get(
        recorded, "/v1/forecasts/GOOG/history?kind=backtest&start=2013-02-05&end=2013-02-06"
    ).get_json()
    assert {f["as_of"] for f in ranged["forecasts"]} == {"2013-02-05", "2013-02-06"}
    live = get(recorded, "/v1/forecasts/GOOG/history?kind=live").get_json()
    assert live["total"] == 6 and {f["kind"] for f in live["forecasts"]} == {"live"}
    # pages cross from live into backtest rows without losing or repeating one
    pages = [
        get(recorded, f"/v1/forecasts/GOOG/history?limit=5&offset={o}").get_json()["forecasts"]
        for o in range(0, 22, 5)
    ]
    assert [f for page in pages for f in page] == body["forecasts"]


def test_csv_export_opens_in_pandas_with_typed_columns(recorded: FlaskClient) -> None:
    response = get(recorded, "/v1/forecasts/GOOG/history?format=csv&limit=1")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="GOOG-forecasts.csv"'
    frame = pd.read_csv(
        io.StringIO(response.get_data(as_text=True)),
        parse_dates=["as_of", "target_date"],
        dtype={"within_interval": "boolean", "fold": "Int64"},
    )
    assert list(frame.columns) == list(forecast_record.COLUMNS)
    assert len(frame) == 22  # every row: a CSV is not paged
    for column in ("predicted_close", "low", "high", "actual_close", "abs_error"):
        assert frame[column].dtype == "float64"
    assert pd.api.types.is_datetime64_dtype(frame["as_of"])
    assert frame["model_version"].dtype == "int64"
    assert frame["within_interval"].isna().sum() == 1 + 4 * 2  # the open forecast, fold 0
    backtest = frame[(frame["kind"] == "backtest") & (frame["method"] == "lstm")]
    assert backtest["abs_error"].mean() == (4.5 + 4.25 + 4.0 + 4.125) / 4
    accepted = get(recorded, "/v1/forecasts/GOOG/history?kind=live", headers={"Accept": "text/csv"})
    assert (
        accepted.mimetype == "text/csv" and len(accepted.get_data(as_text=True).splitlines()) == 7
    )
    browser = get(recorded, "/v1/forecasts/GOOG/history", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.mimetype == "application/json"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("kind=future", "kind must be one of all, live, backtest, got 'future'"),
        ("method=lstm2", "method must be one of lstm, persistence, drift, median_return"),
        ("format=xlsx", "format must be one of json, csv, got 'xlsx'"),
    ],
)
def test_bad_filters_get_one_line(client: FlaskClient, query: str, message: str) -> None:
    body = get(client, f"/v1/forecasts/GOOG/history?{query}", 400).get_json()
    assert body["error"]["code"] == "bad_parameter"
    assert body["error"]["message"].startswith(message)


def test_series_carries_the_backtest_of_the_served_method(
    recorded: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    body = get(recorded, "/v1/series/GOOG").get_json()
    bt = body["backtest"]
    assert bt["method"] == "drift" and bt["model_version"] == 2
    assert bt["target_date"] == DAYS[1:] and bt["predicted_close"] == [760.5, 766.0, 770.75, 775.5]
    assert bt["low"][:2] == [None, None] and bt["low"][2] is not None
    assert bt["persistence_abs_error"] == [5.5, 4.75, 4.75, 5.125]
    ranged = get(recorded, "/v1/series/GOOG?start=2013-02-07").get_json()["backtest"]
    assert ranged["target_date"] == DAYS[3:]
    with sessions() as s:
        assert s.scalar(select(storage.BacktestRecord.n_forecasts)) == 4
        assert s.scalar(select(storage.BacktestRecord.start)) == date(2013, 2, 5)


def test_series_without_a_record(client: FlaskClient) -> None:
    assert get(client, "/v1/series/GOOG").get_json()["backtest"] is None
