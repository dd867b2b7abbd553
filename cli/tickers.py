"""`stockcast tickers add / remove / import / list`: the tracked universe (forecaster.universe)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

import forecaster.series_document  # noqa: F401  (its commit hook renders the series)
from cli.context import AppContext, pass_app
from forecaster import storage, universe
from forecaster.errors import ConfigError, StockcastError
from forecaster.locks import hold, ticker_lock_name
from forecaster.providers import PROVIDERS, get_provider
from forecaster.providers.base import PriceProvider, normalize_ticker

PROVIDER_HELP = f"{' | '.join(PROVIDERS)} (default: STOCKCAST_PROVIDER, sample)."


@click.group()
def tickers() -> None:
    """The tracked tickers: what the nightly pipeline processes."""


def _source(
    app: AppContext, provider: str | None, csv_path: Path | None, backfill: bool
) -> tuple[str, PriceProvider | None]:
    """The provider name to record and, when backfilling, the provider to fetch from. Checked
    before anything is written."""
    name = universe.check_provider_name(provider or app.settings.default_provider)
    if not backfill:
        return name, None
    return name, get_provider(name, app.settings, csv_path)


def _track(
    app: AppContext, symbol: str, name: str, source: PriceProvider | None
) -> universe.TrackResult:
    """Register one ticker in its own transaction; a failure rolls it back entirely."""
    with app.transaction() as session:
        return universe.track_ticker(session, symbol, name, source)


F = TypeVar("F", bound=Callable[..., Any])


def _backfill_options(command: F) -> F:
    """--provider, --csv and --no-backfill, shared by add and import."""
    for option in reversed(
        [
            click.option("--provider", help=PROVIDER_HELP),
            click.option(
                "--csv",
                "csv_path",
                type=click.Path(path_type=Path),
                help="CSV file or directory for --provider csv.",
            ),
            click.option(
                "--no-backfill",
                is_flag=True,
                help="Only register; the next pipeline run fetches the history.",
            ),
        ]
    ):
        command = option(command)
    return command


@tickers.command("add")
@click.argument("symbols", nargs=-1, required=True)
@_backfill_options
@pass_app
def tickers_add(
    app: AppContext,
    symbols: tuple[str, ...],
    provider: str | None,
    csv_path: Path | None,
    no_backfill: bool,
) -> None:
    """Track SYMBOLS: register each with its provider and backfill its history.

    A symbol the provider does not know is reported and not registered; the others are.
    """
    checked = list(dict.fromkeys(normalize_ticker(s) for s in symbols))  # all valid, or nothing
    name, source = _source(app, provider, csv_path, not no_backfill)
    failures = 0
    for symbol in checked:
        try:
            click.echo(_track(app, symbol, name, source).describe())
        except StockcastError as exc:
            failures += 1
            click.echo(f"{symbol}: error: {exc}", err=True)
    if failures:
        raise click.ClickException(f"{failures} of {len(checked)} ticker(s) not added")


@tickers.command("remove")
@click.argument("symbols", nargs=-1, required=True)
@click.option(
    "--purge",
    is_flag=True,
    help="Also delete the stored prices, forecasts, model versions and model files.",
)
@pass_app
def tickers_remove(app: AppContext, symbols: tuple[str, ...], purge: bool) -> None:
    """Stop tracking SYMBOLS. Their data stays (served, and kept for a later `add`) unless --purge."""
    if not purge:
        with app.transaction() as session:
            was_tracked = universe.untrack(session, list(symbols))
        for symbol, tracked in was_tracked.items():
            state = "no longer tracked" if tracked else "was not tracked"
            click.echo(f"{symbol}: {state}; data kept")
        return
    with app.transaction() as session:  # every symbol must exist before anything is deleted
        known = [r.symbol for r in universe.require_all(session, list(symbols))]
    for symbol in known:
        # The ticker's lock: no pipeline step writes a model or forecast for it meanwhile.
        with hold(app.engine, ticker_lock_name(symbol)), app.transaction() as session:
            c = universe.purge(session, symbol)
        click.echo(
            f"{symbol}: purged {c.prices} price row(s), {c.predictions} forecast(s), "
            f"{c.model_versions} model version(s)"
        )


@tickers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_backfill_options
@pass_app
def tickers_import(
    app: AppContext, file: Path, provider: str | None, csv_path: Path | None, no_backfill: bool
) -> None:
    """Track every symbol in FILE: one per line (# comments allowed), or a CSV with a `symbol`
    column. Invalid lines are reported with their line numbers; the valid symbols are added."""
    try:
        parsed = universe.parse_symbol_file(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from exc
    name, source = _source(app, provider, csv_path, not no_backfill)
    for number, _text, reason in parsed.invalid:
        click.echo(f"{file.name}:{number}: {reason}", err=True)
    counts = {"added": 0, "tracked again": 0, "already tracked": 0}
    failed: list[str] = []
    total = len(parsed.symbols)
    for position, (number, symbol) in enumerate(parsed.symbols, start=1):
        try:
            result = _track(app, symbol, name, source)
        except StockcastError as exc:
            failed.append(symbol)
            click.echo(
                f"[{position}/{total}] {file.name}:{number}: {symbol}: error: {exc}", err=True
            )
            continue
        counts[result.status] += 1
        click.echo(f"[{position}/{total}] {result.describe()}", err=True)
    summary = (
        f"{file.name}: {counts['added']} added, {counts['tracked again']} tracked again, "
        f"{counts['already tracked']} already tracked, {len(failed)} failed, "
        f"{len(parsed.invalid)} invalid line(s)"
    )
    if parsed.duplicates:
        summary += f", {parsed.duplicates} duplicate(s) skipped"
    click.echo(summary)
    if parsed.invalid:
        lines = ", ".join(str(number) for number, _, _ in parsed.invalid[:20])
        more = ", ..." if len(parsed.invalid) > 20 else ""
        click.echo(f"invalid lines: {lines}{more}")
    if failed or parsed.invalid:
        raise click.ClickException(
            f"{len(failed) + len(parsed.invalid)} of {total + len(parsed.invalid)} "
            "entries not imported"
        )


@tickers.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include tickers no longer tracked.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@pass_app
def tickers_list(app: AppContext, show_all: bool, as_json: bool) -> None:
    """Tracked tickers: provider, stored range, newest forecast and newest pipeline step."""
    with app.transaction() as session:
        rows = storage.ticker_overview(session, tracked=None if show_all else True)
        fresh = not rows and storage.is_fresh(session)
    if as_json:
        click.echo(json.dumps([_as_dict(r) for r in rows], indent=2))
        return
    if fresh:
        seed = ",".join(app.settings.tickers) or "nothing"
        click.echo(
            f"no tickers yet: the first pipeline run or backfill tracks STOCKCAST_TICKERS ({seed}); "
            "or add some with `stockcast tickers add`"
        )
        return
    if not rows:
        click.echo(
            "no tracked tickers; add some with `stockcast tickers add` (--all: removed ones)"
        )
        return
    click.echo(
        f"{'ticker':<10} {'tracked':<7} {'provider':<9} {'rows':>6}  {'last day':<10}  "
        f"{'forecast for':<12} {'close':>10} {'method':<9} {'last run':<9}"
    )
    for r in rows:
        close = f"{r.forecast_close:10.2f}" if r.forecast_close is not None else f"{'-':>10}"
        click.echo(
            f"{r.symbol:<10} {'yes' if r.tracked else 'no':<7} {r.provider:<9} {r.rows:>6}  "
            f"{r.last_date or '-'!s:<10}  {r.forecast_target or '-'!s:<12} {close} "
            f"{r.forecast_method or '-':<9} {r.last_step_status or '-':<9}"
        )


@tickers.command("resolve")
@click.argument("symbols", nargs=-1, required=True)
@pass_app
def tickers_resolve(app: AppContext, symbols: tuple[str, ...]) -> None:
    """Accept the suspect move of SYMBOLS as real: the next run trains and forecasts as usual.

    (A backfill that adjusts the history, e.g. `stockcast backfill SYMBOL --force` after a
    split, clears the flag by itself.)
    """
    from forecaster.service import require_ticker

    with app.transaction() as session:
        rows = [require_ticker(session, s) for s in symbols]  # all known, or nothing changes
        for row in rows:
            if row.suspect_day is None:
                click.echo(f"{row.symbol}: not suspect; nothing to resolve")
                continue
            click.echo(f"{row.symbol}: resolved ({row.suspect_note}); the next run trains it")
            row.suspect_day = row.suspect_note = None


def _as_dict(r: storage.TickerOverview) -> dict[str, object]:
    def day(value: object) -> str | None:
        return None if value is None else str(value)

    return {
        "ticker": r.symbol,
        "tracked": r.tracked,
        "provider": r.provider,
        "rows": r.rows,
        "first_date": day(r.first_date),
        "last_date": day(r.last_date),
        "last_close": r.last_close,
        "champion_version": r.champion_version,
        "forecast": None
        if r.forecast_as_of is None
        else {
            "as_of": day(r.forecast_as_of),
            "target_date": day(r.forecast_target),
            "predicted_close": r.forecast_close,
            "method": r.forecast_method,
        },
        "last_run_status": r.last_step_status,
        "last_run_at": None if r.last_step_at is None else r.last_step_at.isoformat(),
    }


COMMANDS = [tickers]
