"""Entry point: `stockcast [--verbose] COMMAND ...`."""

from __future__ import annotations

import logging
from typing import Any

import click
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from cli.context import AppContext
from forecaster.errors import StockcastError
from forecaster.logs import configure_logging
from forecaster.settings import Settings
from forecaster.storage import db_error_summary

log = logging.getLogger("stockcast.cli")


class StockcastGroup(click.Group):
    """Turns domain and database errors into a one-line message and a non-zero exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StockcastError as exc:
            raise click.ClickException(str(exc)) from exc
        except AlembicCommandError as exc:  # e.g. `db downgrade` to a revision that does not exist
            raise click.ClickException(f"migration error: {exc}") from exc
        except OperationalError as exc:
            raise click.ClickException(f"database unreachable: {db_error_summary(exc)}") from exc
        except SQLAlchemyError as exc:
            log.exception("database error")
            raise click.ClickException(f"database error: {type(exc).__name__}") from exc


@click.group(cls=StockcastGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=None,
    help="Log line format (default: STOCKCAST_LOG_FORMAT or json).",
)
@click.version_option(package_name="stockcast")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, log_format: str | None) -> None:
    """stockcast: next-trading-day close forecasts with honest baselines.

    Configuration comes from environment variables (DATABASE_URL, STOCKCAST_*); see README.
    """
    try:
        settings = Settings.from_env()
    except StockcastError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging("DEBUG" if verbose else settings.log_level, log_format or settings.log_format)
    from forecaster.network import use_gpu

    use_gpu(settings.use_gpu)  # before any command imports TensorFlow
    app = AppContext(settings)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    from cli import data, db, export, forecasting, pipeline, serve, tickers

    for module in (db, data, tickers, forecasting, export, pipeline, serve):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli.main(prog_name="stockcast")


if __name__ == "__main__":  # pragma: no cover
    main()
