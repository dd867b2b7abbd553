"""`stockcast tickers add / remove / import / list` through CliRunner, on both databases."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from clihelpers import run
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forecaster import storage
from forecaster.settings import Settings


def tickers(sessions: sessionmaker[Session]) -> dict[str, tuple[bool, str]]:
    with sessions() as s:
        return {t.symbol: (t.tracked, t.provider) for t in s.scalars(select(storage.Ticker))}


def test_add_registers_and_backfills(runner: CliRunner, sessions: sessionmaker[Session]) -> None:
    code, out, _ = run(runner, "tickers", "add", "goog", "^GSPC")
    assert code == 0
    assert "GOOG: added (sample), 2148 day(s) stored [2004-08-19 .. 2013-03-01]" in out
    assert "^GSPC: added (sample), 5031 day(s)" in out
    code, out, _ = run(runner, "tickers", "add", "GOOG")
    assert code == 0 and "GOOG: already tracked (sample)" in out
    assert tickers(sessions) == {"GOOG": (True, "sample"), "^GSPC": (True, "sample")}


def test_add_without_backfill_only_registers(
    runner: CliRunner, sessions: sessionmaker[Session]
) -> None:
    code, out, _ = run(runner, "tickers", "add", "AAPL", "--provider", "yfinance", "--no-backfill")
    assert code == 0 and out.strip() == "AAPL: added (yfinance)"
    assert tickers(sessions) == {"AAPL": (True, "yfinance")}
    code, out, _ = run(runner, "tickers", "list")
    assert code == 0 and "AAPL" in out and "yfinance" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["GOOG", "--provider", "nope"], "unknown provider 'nope'"),
        (["GOOG", "BAD$"], "malformed ticker symbol 'BAD$'"),
        (["GOOG", "--provider", "csv"], "the csv provider needs a file or directory"),
    ],
)
def test_bad_add_is_one_line_and_writes_nothing(
    runner: CliRunner, sessions: sessionmaker[Session], args: list[str], message: str
) -> None:
    code, out, err = run(runner, "tickers", "add", *args)
    assert code == 1
    assert err.strip().splitlines() == [f"Error: {err.strip().removeprefix('Error: ')}"]
    assert message in err and "Traceback" not in err + out
    assert tickers(sessions) == {}


def test_add_of_a_symbol_the_provider_does_not_know(
    runner: CliRunner, sessions: sessionmaker[Session]
) -> None:
    code, out, err = run(runner, "tickers", "add", "AAPL", "GOOG")
    assert code == 1
    assert "AAPL: error: unknown ticker 'AAPL'" in err
    assert "Error: 1 of 2 ticker(s) not added" in err
    assert "GOOG: added" in out
    assert tickers(sessions) == {"GOOG": (True, "sample")}  # no AAPL row, not even half


def _model_and_forecast(sessions: sessionmaker[Session], symbol: str) -> None:
    """A champion version with an artifact row and one forecast, written directly."""
    with sessions.begin() as s:
        ticker = storage.get_ticker(s, symbol)
        assert ticker is not None
        day = date(2013, 3, 1)
        version = storage.ModelVersion(
            ticker_id=ticker.id, version=1, status="champion",
            config={}, train_start=day, train_end=day, test_start=day, test_end=day, n_train=1,
            train_seconds=1.0, mae=1.0, persistence_mae=1.0, mae_ratio=1.0,
            interval_halfwidth=0.1, interval_coverage=0.9, metrics={},
        )  # fmt: skip
        s.add(version)
        s.flush()
        s.add(
            storage.ModelArtifact(
                model_version_id=version.id, sha256="0" * 64, size=1, network=b"x", meta={}
            )
        )
        s.add(
            storage.Prediction(
                ticker_id=ticker.id, model_version_id=version.id, as_of_date=day,
                target_date=date(2013, 3, 4), last_close=806.19, predicted_close=807.5,
                lower=790.0, upper=820.0, coverage=0.9, method="drift",
            )
        )  # fmt: skip
        run_ = storage.JobRun(kind="pipeline", trigger="cli", status="succeeded", tickers=[symbol])
        s.add(run_)
        s.flush()
        s.add(
            storage.JobStep(
                run_id=run_.id, ticker=symbol, status="succeeded", model_version_id=version.id
            )
        )


def test_remove_keeps_data_and_purge_deletes_it(
    runner: CliRunner, sessions: sessionmaker[Session], settings: Settings
) -> None:
    run(runner, "tickers", "add", "GOOG", "^GSPC")
    _model_and_forecast(sessions, "GOOG")
    code, out, _ = run(runner, "tickers", "list")
    goog = next(line for line in out.splitlines() if line.startswith("GOOG"))
    assert goog.split() == (
        [
            "GOOG",
            "yes",
            "sample",
            "2148",
            "2013-03-01",
            "2013-03-04",
            "807.50",
            "drift",
            "succeeded",
        ]
    )

    code, out, _ = run(runner, "tickers", "remove", "GOOG")
    assert code == 0 and out.strip() == "GOOG: no longer tracked; data kept"
    assert tickers(sessions)["GOOG"] == (False, "sample")
    code, out, _ = run(runner, "tickers", "list")
    assert "GOOG" not in out and "^GSPC" in out
    code, out, _ = run(runner, "tickers", "list", "--all", "--json")
    by = {t["ticker"]: t for t in json.loads(out)}
    assert by["GOOG"]["tracked"] is False and by["GOOG"]["rows"] == 2148
    assert by["GOOG"]["forecast"] == {
        "as_of": "2013-03-01",
        "target_date": "2013-03-04",
        "predicted_close": 807.5,
        "method": "drift",
    }
    assert by["GOOG"]["champion_version"] == 1 and by["GOOG"]["last_run_status"] == "succeeded"

    code, out, _ = run(runner, "tickers", "remove", "GOOG", "--purge")
    assert code == 0
    assert out.strip() == "GOOG: purged 2148 price row(s), 1 forecast(s), 1 model version(s)"
    assert "GOOG" not in tickers(sessions) and "^GSPC" in tickers(sessions)
    with sessions() as s:
        step = s.scalars(select(storage.JobStep)).one()  # the run's record stays
        assert step.ticker == "GOOG" and step.model_version_id is None
        counts = [
            s.scalar(select(func.count()).select_from(model))
            for model in (storage.Prediction, storage.ModelVersion, storage.ModelArtifact)
        ]
        assert counts == [0, 0, 0]


def test_remove_of_an_unknown_ticker_changes_nothing(
    runner: CliRunner, sessions: sessionmaker[Session]
) -> None:
    run(runner, "tickers", "add", "GOOG", "--no-backfill")
    for extra in ([], ["--purge"]):
        code, _out, err = run(runner, "tickers", "remove", "GOOG", "NOPE", *extra)
        assert code == 1
        assert err.strip() == (
            "Error: unknown ticker 'NOPE': not in the database; nothing was changed"
        )
        assert tickers(sessions) == {"GOOG": (True, "sample")}


def test_import_reports_progress_invalid_lines_and_a_summary(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    run(runner, "tickers", "add", "SYN-RW-1", "--provider", "synthetic", "--no-backfill")
    universe_file = tmp_path / "universe.txt"
    universe_file.write_text(
        "# synthetic universe\nSYN-RW-1\nSYN-AR5-2\n\nBAD$\nsyn-ar5-2\nSYN-RW-3\n"
    )
    code, out, err = run(runner, "tickers", "import", str(universe_file), "--provider", "synthetic")
    assert code == 1
    assert "universe.txt:5: malformed ticker symbol 'BAD$'" in err
    assert "[1/3] SYN-RW-1: already tracked (synthetic)" in err
    assert "[2/3] SYN-AR5-2: added (synthetic), 4000 day(s) stored" in err
    assert "[3/3] SYN-RW-3: added (synthetic)" in err
    assert out.splitlines() == [
        "universe.txt: 2 added, 0 tracked again, 1 already tracked, 0 failed, "
        "1 invalid line(s), 1 duplicate(s) skipped",
        "invalid lines: 5",
    ]
    assert "Error: 1 of 4 entries not imported" in err
    assert tickers(sessions) == {
        s: (True, "synthetic") for s in ("SYN-RW-1", "SYN-AR5-2", "SYN-RW-3")
    }


def test_import_csv_without_backfill(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    listing = tmp_path / "sp500.csv"
    listing.write_text("Symbol,Name\nAAPL,Apple\nBRK-B,Berkshire\nMSFT,Microsoft\n")
    code, out, _ = run(
        runner, "tickers", "import", str(listing), "--provider", "yfinance", "--no-backfill"
    )
    assert code == 0
    assert out.startswith("sp500.csv: 3 added, 0 tracked again, 0 already tracked, 0 failed")
    assert set(tickers(sessions)) == {"AAPL", "BRK-B", "MSFT"}


def test_import_of_symbols_the_provider_does_not_know(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    listing = tmp_path / "mixed.txt"
    listing.write_text("GOOG\nAAPL\n")
    code, out, err = run(runner, "tickers", "import", str(listing))
    assert code == 1
    assert "[2/2] mixed.txt:2: AAPL: error: unknown ticker 'AAPL'" in err
    assert "1 added, 0 tracked again, 0 already tracked, 1 failed, 0 invalid line(s)" in out
    assert tickers(sessions) == {"GOOG": (True, "sample")}


def test_import_of_a_missing_file(runner: CliRunner) -> None:
    code, _, err = run(runner, "tickers", "import", "/nonexistent/list.txt")
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_fresh_database_is_seeded_by_commands_without_tickers(
    runner: CliRunner, sessions: sessionmaker[Session]
) -> None:
    code, out, _ = run(runner, "tickers", "list")
    assert code == 0 and "the first pipeline run or backfill tracks STOCKCAST_TICKERS" in out
    code, out, _ = run(runner, "backfill")
    assert code == 0 and "^GSPC: fetched 5031" in out and "GOOG: fetched 2148" in out
    assert tickers(sessions) == {"^GSPC": (True, "sample"), "GOOG": (True, "sample")}
    run(runner, "tickers", "remove", "^GSPC", "GOOG")
    code, _, err = run(runner, "backfill")  # nothing tracked any more, and no reseeding
    assert code == 1 and "no tracked tickers" in err
    code, out, _ = run(runner, "tickers", "list")
    assert "no tracked tickers" in out
