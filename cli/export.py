"""`stockcast forecasts export`: a ticker's stored forecast record, live and backtest, as JSON or
CSV (the rows of GET /v1/forecasts/<ticker>/history)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import click

from cli.context import AppContext, parse_day, pass_app
from forecaster import forecast_record, storage
from forecaster.errors import InvalidDateRange, UnknownTicker
from forecaster.policy import METHODS
from forecaster.providers.base import normalize_ticker


@click.group()
def forecasts() -> None:
    """The stored forecast record."""


@forecasts.command("export")
@click.argument("ticker")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    default=None,
    help="Write CSV to this file ('-': standard output) instead of JSON on standard output.",
)
@click.option(
    "--kind",
    type=click.Choice(["all", "live", "backtest"]),
    default="all",
    show_default=True,
    help="live: each night's served forecast; backtest: the newest full backtest, every method.",
)
@click.option("--method", type=click.Choice(METHODS), default=None, help="Only this method.")
@click.option("--start", default=None, help="First as-of day (YYYY-MM-DD).")
@click.option("--end", default=None, help="Last as-of day (YYYY-MM-DD).")
@pass_app
def export(
    app: AppContext,
    ticker: str,
    csv_path: str | None,
    kind: str,
    method: str | None,
    start: str | None,
    end: str | None,
) -> None:
    """Export TICKER's forecast record, newest first: as JSON on standard output, or as CSV."""
    symbol = normalize_ticker(ticker)
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if first and last and first > last:
        raise InvalidDateRange(f"--start {first} is after --end {last}")
    kinds: tuple[forecast_record.Kind, ...] = (
        ("live", "backtest") if kind == "all" else (kind,)  # type: ignore[assignment]
    )
    with app.transaction() as session:
        row = storage.get_ticker(session, symbol)
        if row is None:
            raise UnknownTicker(symbol, "not in the database; run `stockcast backfill` first")
        total, rows = forecast_record.page(
            session, row.id, kinds=kinds, start=first, end=last, method=method
        )
    if csv_path is None:
        body = {
            "ticker": symbol,
            "total": total,
            "forecasts": [
                {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in item.items()}
                for item in map(dataclasses.asdict, rows)
            ],
        }
        click.echo(json.dumps(body, indent=1))
        return
    text = forecast_record.to_csv(rows)
    if csv_path == "-":
        click.echo(text, nl=False)
        return
    _write_atomically(Path(csv_path), text)
    click.echo(f"{symbol}: {total} forecast(s) written to {csv_path}", err=True)


def _write_atomically(path: Path, text: str) -> None:
    """All or nothing: a failed export leaves any earlier file at `path` as it was."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


COMMANDS = [forecasts]
