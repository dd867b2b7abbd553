"""`stockcast forecasts export`: the record a real training and forecast left, as JSON or CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from clihelpers import run

from forecaster.policy import METHODS


@pytest.mark.slow
def test_export_after_train_and_predict(runner: CliRunner, tmp_path: Path) -> None:
    assert run(runner, "backfill", "GOOG", "--start", "2012-01-01")[0] == 0
    assert run(runner, "train", "GOOG")[0] == 0
    assert run(runner, "predict", "GOOG")[0] == 0
    code, out, _ = run(runner, "forecasts", "export", "goog")
    assert code == 0
    body = json.loads(out)
    kinds = [f["kind"] for f in body["forecasts"]]
    assert body["ticker"] == "GOOG" and body["total"] == len(kinds) == 1 + 120 * len(METHODS)
    assert kinds[0] == "live" and set(kinds[1:]) == {"backtest"}
    assert body["forecasts"][0]["actual_close"] is None  # tomorrow's close is not known yet

    target = tmp_path / "goog.csv"
    code, _, err = run(
        runner, "forecasts", "export", "GOOG", "--csv", str(target), "--kind", "backtest"
    )
    assert code == 0 and f"GOOG: {120 * len(METHODS)} forecast(s) written to {target}" in err
    frame = pd.read_csv(target, parse_dates=["as_of", "target_date"])
    assert len(frame) == 120 * len(METHODS) and set(frame["method"]) == set(METHODS)
    assert frame["predicted_close"].dtype == "float64" and frame["fold"].eq(0).all()
    args = ("--csv", "-", "--kind", "backtest", "--method", "drift")
    code, out, _ = run(runner, "forecasts", "export", "GOOG", *args)
    assert code == 0 and out.splitlines()[0].startswith("kind,method,as_of,target_date")
    assert len(out.splitlines()) == 1 + 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MSFT"], "unknown ticker 'MSFT'"),
        (["GOOG", "--start", "2013-02-01", "--end", "2013-01-01"], "is after --end"),
        (["GOOG", "--start", "1/2/2013"], "--start must be a date"),
        (["GOOG", "--csv", "/nonexistent-dir/x.csv"], "cannot write /nonexistent-dir/x.csv"),
    ],
)
def test_export_errors_are_one_line(runner: CliRunner, args: list[str], message: str) -> None:
    assert run(runner, "backfill", "GOOG", "--start", "2013-01-01")[0] == 0
    code, out, err = run(runner, "forecasts", "export", *args)
    assert code != 0 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
