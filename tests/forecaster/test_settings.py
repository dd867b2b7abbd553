"""Configuration from the environment: validated values, one-line errors, sane defaults."""

from __future__ import annotations

import pytest

from forecaster.errors import ConfigError
from forecaster.params import ModelParams
from forecaster.settings import Settings


def test_defaults_and_the_one_parameters_object() -> None:
    s = Settings.from_env({})
    assert s.model == ModelParams()
    assert s.model.learning_rate == 1e-3 and s.model.epochs == 200  # one default, one place
    assert (s.backtest_days, s.min_backtest_forecasts, s.skill_alpha) == (500, 250, 0.05)
    custom = Settings.from_env({"STOCKCAST_LSTM_UNITS": "8,4", "STOCKCAST_EPOCHS": "3"})
    assert custom.model.units == (8, 4) and custom.model.epochs == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STOCKCAST_LOG_LEVEL": "verbose"}, "STOCKCAST_LOG_LEVEL must be one of"),
        ({"STOCKCAST_YF_AUTO_ADJUST": "ture"}, "STOCKCAST_YF_AUTO_ADJUST must be true or false"),
        ({"STOCKCAST_SKILL_ALPHA": "0"}, "STOCKCAST_SKILL_ALPHA must be in (0, 1]"),
        ({"STOCKCAST_LEARNING_RATE": "-1"}, "STOCKCAST_LEARNING_RATE must be positive"),
        ({"STOCKCAST_BACKTEST_DAYS": "0"}, "STOCKCAST_BACKTEST_DAYS must be >= 10"),
        ({"STOCKCAST_EPOCHS": "many"}, "STOCKCAST_EPOCHS must be an integer"),
        ({"STOCKCAST_EXECUTOR": "threads"}, "STOCKCAST_EXECUTOR must be one of local, celery"),
        ({"STOCKCAST_PIPELINE_ISOLATION": "fork"}, "STOCKCAST_EXECUTOR must be one of"),
        ({"STOCKCAST_BROKER_URL": "amqp://x"}, "STOCKCAST_BROKER_URL must be a redis://"),
        ({"STOCKCAST_WORKER_MAX_TASKS": "0"}, "STOCKCAST_WORKER_MAX_TASKS must be >= 1"),
        # stricter since the environment is a pydantic-settings model
        ({"STOCKCAST_PROVIDER": "yahoo"}, "STOCKCAST_PROVIDER must be one of sample, synthetic"),
        ({"STOCKCAST_HIGHWAY": "lstnet"}, "STOCKCAST_HIGHWAY must be one of ar, ridge, none"),
        ({"STOCKCAST_USE_GPU": "maybe"}, "STOCKCAST_USE_GPU must be true or false"),
        ({"STOCKCAST_WORKER_CONCURRENCY": "-1"}, "STOCKCAST_WORKER_CONCURRENCY must be >= 0"),
        (
            {"STOCKCAST_TICKERS": "GOOG,BAD$"},
            "STOCKCAST_TICKERS holds a malformed ticker symbol 'BAD$'",
        ),
        ({"STOCKCAST_LOG_FORMAT": "xml"}, "STOCKCAST_LOG_FORMAT must be one of json, text"),
        ({"STOCKCAST_DB_TIMEOUT_SECONDS": "nan"}, "STOCKCAST_DB_TIMEOUT_SECONDS must be between"),
        ({"STOCKCAST_YF_BACKOFF_CAP": "inf"}, "STOCKCAST_YF_BACKOFF_CAP must be a number >= 0"),
        ({"STOCKCAST_API_RESPONSE_TTL": "-1"}, "STOCKCAST_API_RESPONSE_TTL must be a number >= 0"),
        ({"STOCKCAST_LEARNING_RATE": "fast"}, "STOCKCAST_LEARNING_RATE must be a number"),
        ({"STOCKCAST_EPOCHS": "5_0"}, "STOCKCAST_EPOCHS must be an integer"),
        ({"STOCKCAST_LSTM_UNITS": "8"}, "STOCKCAST_LSTM_UNITS needs at least two positive sizes"),
        ({"STOCKCAST_LSTM_UNITS": "8,x"}, "STOCKCAST_LSTM_UNITS must be integers"),
        ({"STOCKCAST_FEATURES": "open,high"}, "STOCKCAST_FEATURES must be drawn from"),
        ({"STOCKCAST_WINDOW": "{x}"}, "STOCKCAST_WINDOW must be an integer, got '{x}'"),
    ],
)
def test_bad_values_are_one_line_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert message in str(info.value) and "\n" not in str(info.value)
    for leak in ("pydantic", "validation error", "Input should", "type="):
        assert leak not in str(info.value)


def test_a_broker_url_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"STOCKCAST_BROKER_URL": "amqp://user:secret@host/"})
    assert "secret" not in str(info.value)


def test_one_declaration_per_variable_with_a_description() -> None:
    from forecaster.params import ModelParams
    from forecaster.settings import variables

    assert not variables(Settings).keys() & variables(ModelParams).keys()
    for model in (Settings, ModelParams):
        for variable, field in variables(model).items():
            assert model.model_fields[field].description, variable


def test_replace_validates_like_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"^window must be >= 2, got '1'$"):
        Settings().replace(window=1)
    assert Settings().replace(window=3).window == 3
    assert Settings().model.replace(highway="none").highway == "none"


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("ON", True), ("0", False), ("", False)]
)
def test_booleans(raw: str, value: bool) -> None:
    assert Settings.from_env({"STOCKCAST_YF_AUTO_ADJUST": raw}).yf_auto_adjust is value


@pytest.mark.parametrize(
    ("env", "executor"),
    [
        ({}, "local"),
        ({"STOCKCAST_EXECUTOR": "Celery"}, "celery"),
        # the variable it replaced is still read when the new one is unset
        ({"STOCKCAST_PIPELINE_ISOLATION": "process"}, "local"),
        ({"STOCKCAST_PIPELINE_ISOLATION": "inline"}, "inline"),
        ({"STOCKCAST_PIPELINE_ISOLATION": "inline", "STOCKCAST_EXECUTOR": "local"}, "local"),
    ],
)
def test_executor_choice(env: dict[str, str], executor: str) -> None:
    settings = Settings.from_env(env)
    assert settings.executor == executor
    assert settings.broker_url == "redis://127.0.0.1:6379/0" and settings.worker_max_tasks == 200


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKCAST_EPOCHS", "many")
    assert Settings.from_env({}).model.epochs == 200  # a test's dict, not the process's env
    with pytest.raises(ConfigError, match="STOCKCAST_EPOCHS must be an integer"):
        Settings.from_env()


def test_blank_values_keep_the_defaults_and_values_are_normalised() -> None:
    blank = {name: "  " for name in ("STOCKCAST_LOG_LEVEL", "STOCKCAST_DATA_DIR", "DATABASE_URL")}
    assert Settings.from_env(blank) == Settings()
    s = Settings.from_env(
        {
            "STOCKCAST_LOG_LEVEL": " debug ",
            "STOCKCAST_PROVIDER": "Synthetic",
            "STOCKCAST_TICKERS": " goog, ^gspc ,",
            "STOCKCAST_DB_TIMEOUT_SECONDS": "5",
            "STOCKCAST_EPOCHS": "+3",
        }
    )
    assert (s.log_level, s.default_provider, s.tickers) == ("DEBUG", "synthetic", ("GOOG", "^GSPC"))
    assert s.db_timeout_seconds == 5.0 and s.model.epochs == 3


def test_cli_prints_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    monkeypatch.setenv("STOCKCAST_API_MAX_LIMIT", "lots")
    result = CliRunner().invoke(cli, ["runs", "list"])
    assert result.exit_code == 1
    assert result.output == "Error: STOCKCAST_API_MAX_LIMIT must be an integer, got 'lots'\n"


def readme_table() -> dict[str, str]:
    """The README's configuration table: variable -> its default as written."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text()
    table = text.split("| variable | default | meaning |", 1)[1].split("\n\n", 1)[0]
    found: dict[str, str] = {}
    for row in table.strip().splitlines()[1:]:
        names_cell, default_cell = row.split(" | ")[:2]
        names = [n.strip(" `|") for n in names_cell.split(" / ")]
        defaults = [d.strip(" `") for d in default_cell.split(" / ")]
        assert len(names) == len(defaults), row
        found.update(zip(names, defaults, strict=True))
    return found


def test_the_readme_table_lists_every_variable_with_its_default() -> None:
    from forecaster.params import ModelParams
    from forecaster.settings import variables

    declared: dict[str, object] = {}
    for model in (Settings, ModelParams):
        for variable, field in variables(model).items():
            declared[variable] = model.model_fields[field].default
    table = readme_table()
    assert set(table) == set(declared)
    for variable, default in declared.items():
        if default in (None, "", 0) or isinstance(default, type(Settings().data_dir)):
            continue  # derived at run time: written in words (cores, <data dir>/...)
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, tuple):
            shown = ",".join(str(v) for v in default)
        elif isinstance(default, float):
            shown = f"{default:g}"
        else:
            shown = str(default)
        assert table[variable] == shown, variable


def test_zero_epochs_is_the_highway_alone_and_loads_from_old_artifacts() -> None:
    from forecaster.params import ModelParams

    ridge_only = Settings().model.replace(epochs=0)  # a backtest that kept the highway alone
    assert ModelParams.from_dict(ridge_only.to_dict()) == ridge_only
    with pytest.raises(ValueError, match="STOCKCAST_EPOCHS=0 leaves nothing to train"):
        ridge_only.replace(highway="none")
    with pytest.raises(ValueError, match="ModelParams has no field epoch"):
        ridge_only.replace(epoch=3)


def test_text_values_are_stripped_so_machines_agree() -> None:
    from forecaster.training import run_config

    s = Settings.from_env(
        {"DATABASE_URL": " sqlite:///x.db\n", "STOCKCAST_EXCHANGE_CALENDAR": "XNYS "}
    )
    assert (s.database_url, s.exchange_calendar) == ("sqlite:///x.db", "XNYS")
    assert run_config(s) == run_config(Settings().replace(database_url="sqlite:///x.db"))
