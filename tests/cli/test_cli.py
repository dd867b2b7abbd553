"""The admin CLI as an operator meets it: CliRunner over the real command group, on both databases."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from clihelpers import run

from cli.main import cli


def test_help_lists_commands(runner: CliRunner) -> None:
    code, out, _ = run(runner, "--help")
    assert code == 0
    for command in ("db", "backfill", "tickers", "prices"):
        assert command in out


def test_upgrade_backfill_show(runner: CliRunner) -> None:
    assert run(runner, "db", "upgrade")[0] == 0
    code, out, _ = run(runner, "backfill", "^GSPC", "--start", "2018-06-01")
    assert code == 0, out
    assert "^GSPC: fetched 147, inserted 147, updated 0" in out
    code, out, _ = run(runner, "backfill", "^GSPC", "--start", "2018-06-01")
    assert code == 0
    assert "inserted 0, updated 0" in out and "already up to date" in out
    code, out, _ = run(runner, "prices", "show", "^GSPC", "--last", "5")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 6
    assert lines[-1].startswith("2018-12-31") and "2506.85" in lines[-1]
    assert lines[1].startswith("2018-12-24")
    code, out, _ = run(runner, "tickers", "list")
    assert code == 0 and "^GSPC" in out and "147" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backfill", "BAD$"], "malformed ticker"),
        (["backfill", "GOOG", "--provider", "nope"], "unknown provider 'nope'"),
        (["backfill", "GOOG", "--start", "2013-02-01", "--end", "2013-01-01"], "before start"),
        (["backfill", "GOOG", "--start", "01/02/2013"], "--start must be a date"),
        (["backfill", "AAPL"], "unknown ticker 'AAPL'"),
        (["prices", "show", "MSFT"], "unknown ticker 'MSFT'"),
    ],
)
def test_bad_input_is_a_one_line_error(runner: CliRunner, args: list[str], message: str) -> None:
    code, out, err = run(runner, *args)
    assert code != 0
    assert message in err
    assert "Traceback" not in err + out


def test_database_unreachable_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["tickers", "list"])
    assert result.exit_code == 1
    assert "database unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_unmigrated_database_says_to_upgrade(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    result = CliRunner().invoke(cli, ["tickers", "list"])
    assert result.exit_code == 1
    assert "stockcast db upgrade" in result.stderr


def test_migration_errors_are_one_line(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["db", "downgrade", "nonsense"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: migration error: Can't locate revision identified by 'nonsense'"
    ]


def test_backfill_before_the_stored_range(runner: CliRunner) -> None:
    run(runner, "backfill", "GOOG", "--start", "2013-02-01")
    code, out, _ = run(runner, "backfill", "GOOG", "--end", "2013-01-31")
    assert code == 0 and "GOOG: fetched 2128, inserted 2128" in out  # 2004-08-19 .. 2013-01-31


def test_the_model_list_says_a_universe_of_one_in_the_singular() -> None:
    from cli.forecasting import _scope

    one = {
        "universe": {"tickers": 1, "windows": 5024, "members": 3, "trained_through": "2018-12-31"}
    }
    assert _scope(one) == "universe (1 ticker, 5024 windows, 3 networks, through 2018-12-31)"
    many = {"universe": {"tickers": 4, "windows": 9, "members": 1, "trained_through": "x"}}
    assert _scope({**many, "universe": {**many["universe"], "warm_start": True}}) == (
        "universe (4 tickers, 9 windows, 1 network, through x, warm start)"
    )
    assert _scope({}) == "ticker"
