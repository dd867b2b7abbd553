"""`stockcast backfill`, `prices show`: market data in and out of the database."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.context import AppContext, parse_day, pass_app, resolve_tickers
from forecaster import ingest, storage
from forecaster.errors import StockcastError, UnknownTicker
from forecaster.providers import get_provider
from forecaster.providers.base import check_range, normalize_ticker


@click.command()
@click.argument("tickers", nargs=-1)
@click.option("--start", help="First day (YYYY-MM-DD, inclusive). Default: all available history.")
@click.option("--end", help="Last day (YYYY-MM-DD, inclusive). Default: today.")
@click.option("--provider", help="sample | yfinance | csv (default: STOCKCAST_PROVIDER, sample).")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    help="CSV file or directory for --provider csv.",
)
@click.option(
    "--force", is_flag=True, help="Re-fetch the whole range instead of only missing days."
)
@click.option(
    "--strict", is_flag=True, help="Store nothing for a ticker if any row fails validation."
)
@click.option(
    "--retrain",
    is_flag=True,
    help="Afterwards retrain, evaluate, promote and forecast each backfilled ticker "
    "(recorded as a pipeline run). Use after a --force backfill that rewrote history.",
)
@pass_app
def backfill(
    app: AppContext,
    tickers: tuple[str, ...],
    start: str | None,
    end: str | None,
    provider: str | None,
    csv_path: Path | None,
    force: bool,
    strict: bool,
    retrain: bool,
) -> None:
    """Fetch, validate and store daily prices for TICKERS (default: the tracked tickers).

    Incremental: only days missing before or after what is stored are fetched, unless --force.
    Re-running never duplicates a row.
    """
    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    check_range(first, last)
    symbols = resolve_tickers(app, tickers)
    source = get_provider(provider or app.settings.default_provider, app.settings, csv_path)
    failures = 0
    with click.progressbar(
        symbols,
        label="backfill",
        show_pos=True,
        item_show_func=lambda s: s or "",
        file=sys.stderr,  # click.get_text_stream is deprecated (gone in Click 9)
    ) as bar:
        rules = ingest.IntegrityRules.from_settings(app.settings)
        results: list[ingest.BackfillResult | StockcastError] = []
        for symbol in bar:
            try:
                with app.transaction() as session:
                    results.append(
                        ingest.backfill_ticker(
                            session,
                            source,
                            symbol,
                            first,
                            last,
                            force=force,
                            strict=strict,
                            rules=rules,
                        )
                    )
            except StockcastError as exc:
                failures += 1
                results.append(exc)
    for symbol, outcome in zip(symbols, results, strict=True):
        if isinstance(outcome, Exception):
            click.echo(f"{symbol}: error: {outcome}", err=True)
            continue
        span = f"{outcome.first_date} .. {outcome.last_date}" if outcome.last_date else "no data"
        click.echo(
            f"{symbol}: fetched {outcome.fetched}, inserted {outcome.inserted}, updated {outcome.updated}, "
            f"unchanged {outcome.unchanged}, rejected {outcome.rejected}  [{span}]"
            + ("  (already up to date)" if not (outcome.inserted or outcome.updated) else "")
        )
        if outcome.rejected_summary:
            click.echo(outcome.rejected_summary, err=True)
        if outcome.revised_from:
            click.echo(
                f"{symbol}: the provider revised the stored history from {outcome.revised_from}: "
                "it was fetched whole and replaced; the next training runs a full backtest"
            )
        if outcome.suspect:
            click.echo(
                f"{symbol}: suspect: {outcome.suspect}; persistence serves until "
                f"`stockcast tickers resolve {symbol}` or a backfill that adjusts it"
            )
        if outcome.cleared:
            click.echo(f"{symbol}: suspect cleared: {outcome.cleared}")
    if retrain:
        from cli.pipeline import run_and_report

        stored = [s for s, r in zip(symbols, results, strict=True) if not isinstance(r, Exception)]
        if stored:
            run_and_report(app, stored, kind="retrain", fetch=False, force_train=True)
    if failures:
        raise click.ClickException(f"{failures} of {len(symbols)} ticker(s) failed")


@click.group()
def prices() -> None:
    """Stored daily prices."""


@prices.command("show")
@click.argument("ticker")
@click.option(
    "--last",
    "last_n",
    type=click.IntRange(1, 100_000),
    default=10,
    show_default=True,
    help="Newest N trading days.",
)
@pass_app
def prices_show(app: AppContext, ticker: str, last_n: int) -> None:
    """Print the newest stored OHLCV rows of TICKER, with the splits and dividends recorded on
    those days and whether the ticker is suspect."""
    symbol = normalize_ticker(ticker)
    with app.transaction() as session:
        row = storage.get_ticker(session, symbol)
        if row is None:
            raise UnknownTicker(symbol, "not in the database; run `stockcast backfill` first")
        frame = storage.load_prices(session, row.id, limit=last_n)
        since = frame.index[0].date() if len(frame) else None
        actions: dict[object, list[str]] = {}
        for a in storage.actions_of(session, row.id, since):
            shown = f"split {a.value:g}:1" if a.kind == "split" else f"dividend {a.value:g}"
            actions.setdefault(a.date, []).append(shown)
        suspect = (row.suspect_day, row.suspect_note)
    click.echo(
        f"{'date':<10} {'open':>12} {'high':>12} {'low':>12} {'close':>12} {'volume':>15}  actions"
    )
    for when, r in frame.iterrows():
        click.echo(
            f"{when.date()!s:<10} {r.open:12.2f} {r.high:12.2f} {r.low:12.2f} {r.close:12.2f} "
            f"{r.volume:15,.0f}  {', '.join(actions.get(when.date(), []))}".rstrip()
        )
    if suspect[0] is not None:
        click.echo(
            f"suspect since {suspect[0]}: {suspect[1]}; persistence serves until "
            f"`stockcast tickers resolve {symbol}` or a backfill that adjusts the history"
        )


COMMANDS = [backfill, prices]
