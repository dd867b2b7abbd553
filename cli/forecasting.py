"""`stockcast train`, `evaluate`, `predict`, `models list`: the forecasting use cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.orm import Session

from cli.context import AppContext, parse_day, pass_app, resolve_tickers
from forecaster import artifacts, documents, locks, refresh, service, storage
from forecaster.errors import StockcastError
from forecaster.predict import live_figures


def _fmt(value: object, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(report_dict: dict) -> None:
    """A metrics table: the network and every baseline on the same days."""
    click.echo(f"  {'method':<15} {'MAE':>10} {'RMSE':>10} {'MAPE %':>8} {'dir. acc.':>9}")
    for method, m in report_dict["metrics"].items():
        da = m.get("directional_accuracy")
        click.echo(
            f"  {method:<15} {_fmt(m['mae'])!s:>10} {_fmt(m['rmse'])!s:>10} "
            f"{_fmt(m['mape'], '.3f')!s:>8} {_fmt(da, '.3f') if da is not None else 'n/a':>9}"
        )
    click.echo(f"  MAE ratio model/persistence: {_fmt(report_dict.get('mae_ratio'))}")


def print_backtest(bt: dict) -> None:
    """The rolling-origin backtest: every method on the same days, DM tests, coverage."""
    click.echo(
        f"  {bt['scheme']} backtest {bt['start']}..{bt['end']}: {bt['n_forecasts']} one-step "
        f"forecasts, {bt['folds']} refits"
    )
    click.echo(
        f"  {'method':<15} {'MAE':>10} {'RMSE':>10} {'MAPE %':>8} {'dir. acc.':>9} "
        f"{'ratio':>7} {'DM t':>7} {'DM p':>7} {'cover':>6}"
    )
    cover = bt.get("coverage_by_method") or {}
    persistence = bt["metrics"]["persistence"]["mae"]
    for method, m in bt["metrics"].items():
        da = m.get("directional_accuracy")
        dm = bt.get("dm", {}).get(method, {})
        ratio = m["mae"] / persistence if persistence else None
        click.echo(
            f"  {method:<15} {_fmt(m['mae'])!s:>10} {_fmt(m['rmse'])!s:>10} "
            f"{_fmt(m['mape'], '.3f')!s:>8} {_fmt(da, '.3f') if da is not None else 'n/a':>9} "
            f"{_fmt(ratio)!s:>7} {_fmt(dm.get('stat'), '.2f')!s:>7} "
            f"{_fmt(dm.get('pvalue'), '.3g')!s:>7} {_fmt(cover.get(method), '.1%')!s:>6}"
        )
    click.echo(
        f"  best baseline: {bt['best_baseline']}; network vs it: MAE ratio "
        f"{_fmt(bt.get('best_baseline_mae_ratio'))}, DM p={_fmt(bt.get('dm_best_pvalue'), '.3g')} "
        "(one-sided: the network is more accurate)"
    )
    click.echo(
        f"  cover: each method's own interval, out of sample on {bt.get('coverage_n')} "
        f"forecasts (nominal {_fmt(bt.get('nominal_coverage'), '.0%')}; '-': too short to measure)"
    )


def _each(app: AppContext, symbols: list[str], work: Callable[[Session, str], None]) -> int:
    """Run `work` per ticker in its own transaction."""
    failures = 0
    for symbol in symbols:
        try:
            with app.transaction() as session:
                work(session, symbol)
        except StockcastError as exc:
            failures += 1
            click.echo(f"{symbol}: error: {exc}", err=True)
    return failures


@click.command()
@click.argument("tickers", nargs=-1)
@pass_app
def train(app: AppContext, tickers: tuple[str, ...]) -> None:
    """Train a new model version for TICKERS (default: tracked tickers), then forecast.

    A rolling-origin backtest measures the network against persistence, drift and the median
    return; the served network is then refit on every stored day. The network produces the
    forecasts only if it beat the best baseline significantly (Diebold-Mariano p below
    STOCKCAST_SKILL_ALPHA); otherwise that baseline does.
    """
    symbols = resolve_tickers(app, tickers)
    app.check_schema()
    # The pipeline's step on stored prices: no transaction stays open while the network trains.
    options = refresh.RefreshOptions(fetch=False, force_train=True)
    if app.settings.model_scope == "universe":
        _train_universe(app, options)
        return
    failures = 0
    for symbol in symbols:
        click.echo(f"{symbol}: training ...", err=True)
        try:
            # The pipeline's lock: never two trainings of one ticker at once (scheduler, CLI).
            with locks.hold(app.engine, locks.ticker_lock_name(symbol)):
                outcome = refresh.refresh_ticker(app.settings, symbol, options, engine=app.engine)
        except StockcastError as exc:
            outcome = refresh.StepOutcome(symbol, status="failed", error=str(exc))
        if outcome.status == "failed":
            failures += 1
            click.echo(f"{symbol}: error: {outcome.error}", err=True)
            continue
        _echo_trained(app, outcome)
    if failures:
        raise click.ClickException("training failed for some tickers")


def _train_universe(app: AppContext, options: refresh.RefreshOptions) -> None:
    """Universe scope: one fit for every tracked ticker (the pipeline's universe step)."""
    from forecaster.universe import tracked_universe
    from forecaster.universe_refresh import refresh_universe_locked

    with app.transaction() as session:
        symbols = tracked_universe(session, app.settings)
    click.echo(f"universe of {len(symbols)} tracked tickers: training ...", err=True)
    outcome = refresh_universe_locked(app.settings, symbols, options, app.engine)
    for note in outcome.notes:
        click.echo(note)
    if outcome.status != "succeeded":
        raise click.ClickException(outcome.error or f"universe {outcome.status}")


def _echo_trained(app: AppContext, outcome: refresh.StepOutcome) -> None:
    symbol = outcome.ticker
    with app.transaction() as session:
        v = session.get(storage.ModelVersion, outcome.model_version_id)
        assert v is not None  # the step has just committed it
        verdict = (
            f"champion, serves {v.method}: {v.method_reason}"
            if outcome.promoted
            else f"rejected: {v.rejection_reason}"
        )
        click.echo(
            f"{symbol}: v{v.version} trained through {v.trained_through} on {v.n_train} windows "
            f"in {v.train_seconds:.1f}s; backtest {v.test_start}..{v.test_end}: MAE "
            f"{_fmt(v.mae)} vs persistence {_fmt(v.persistence_mae)} "
            f"(ratio {_fmt(v.mae_ratio)}) -> {verdict}"
        )
    forecast = outcome.forecast
    if forecast is not None:
        click.echo(
            f"{symbol}: {forecast['target_date']} close forecast "
            f"{forecast['predicted_close']:.2f} ({forecast.get('method', 'lstm')}, "
            f"champion v{forecast['model_version']})"
        )


@click.command()
@click.argument("ticker")
@click.option(
    "--start",
    help="First day to score the served network on (default: the day after it was trained "
    "through).",
)
@pass_app
def evaluate(app: AppContext, ticker: str, start: str | None) -> None:
    """TICKER's champion: its rolling-origin backtest against the baselines, with Diebold-Mariano
    tests, and its served network scored on the days stored since it was trained."""
    begin = parse_day(start, "--start")
    with app.transaction() as session:
        result = service.evaluate_ticker(session, app.settings, ticker, begin)
        v = result.model_version
        symbol = v.ticker.symbol
        record, demoted = live_figures(session, v.ticker, v)
    click.echo(
        f"{symbol} champion v{v.version}, trained through {v.trained_through or v.train_end}, "
        f"serves {v.method}" + (f" ({v.method_reason})" if v.method_reason else "")
    )
    if result.backtest:
        print_backtest(result.backtest)
    else:
        click.echo("  no backtest recorded (a version from before rolling-origin backtests)")
    if result.live is not None:
        report = result.live.to_dict()
        click.echo(
            f"  since training: the served network walk-forward from {result.live_start} "
            f"({report['n']} forecasts, one step ahead)"
        )
        print_report(report)
    else:
        click.echo("  since training: no new stored days to score yet")
    print_live(record, demoted)


def print_live(record: Any, demoted: bool) -> None:
    """The live record: what every method forecast on the nights after the backtest, scored."""
    if record is None:
        return
    if not record.n:
        click.echo(f"  live record after {record.since}: no scored night yet")
        return
    click.echo(
        f"  live record after {record.since}: {record.n} nights, every method's stored forecast "
        "scored against the close that arrived"
    )
    click.echo(f"  {'method':<15} {'MAE':>10} {'ratio':>7}")
    for method, mae in record.mae.items():
        click.echo(f"  {method:<15} {_fmt(mae)!s:>10} {_fmt(record.ratio(method))!s:>7}")
    click.echo(
        f"  best baseline: {record.best_baseline}; DM p (network better) "
        f"{_fmt(record.dm_pvalue, '.3g')}, (network worse) {_fmt(record.worse_pvalue, '.3g')}"
        + ("; the network is demoted until a full backtest" if demoted else "")
    )


@click.command()
@click.argument("tickers", nargs=-1)
@pass_app
def predict(app: AppContext, tickers: tuple[str, ...]) -> None:
    """Forecast the next trading day's close for TICKERS with their champions and store it."""
    symbols = resolve_tickers(app, tickers)

    def work(session: Session, symbol: str) -> None:
        p = service.predict_ticker(session, app.settings, symbol)
        click.echo(
            f"{symbol}: {p.target_date} close forecast {p.predicted_close:.2f} "
            f"[{p.lower:.2f}, {p.upper:.2f}] ({p.coverage:.0%} interval); "
            f"last close {p.last_close:.2f} on {p.as_of_date}; method {p.method}"
            + (f" ({p.method_reason})" if p.method_reason else "")
        )

    if _each(app, symbols, work):
        raise click.ClickException("prediction failed for some tickers")


@click.group()
def models() -> None:
    """Model versions."""


@models.command("list")
@click.argument("ticker")
@pass_app
def models_list(app: AppContext, ticker: str) -> None:
    """Model versions of TICKER, newest first, with backtest figures and serving methods."""
    with app.transaction() as session:
        row = service.require_ticker(session, ticker)
        versions = storage.model_versions(session, row.id)
        stored = artifacts.sizes(session, row.id)
    if not versions:
        click.echo(f"{row.symbol}: no model versions yet; run `stockcast train {row.symbol}`")
        return
    click.echo(
        f"{'ver':>4} {'status':<9} {'trained':<16} {'through':<10} {'backtest':<23} {'n':>4} "
        f"{'ratio':>7} {'best base':<13} {'vs best':>7} {'DM p':>7} {'cover':>6} {'artifact':>8}"
        f"  serves  scope"
    )
    for v in versions:
        bt = v.metrics.get("backtest", {}) if isinstance(v.metrics, dict) else {}
        serves = v.method if v.status != "rejected" else f"- ({v.rejection_reason})"
        click.echo(
            f"{v.version:>4} {v.status:<9} {v.trained_at:%Y-%m-%d %H:%M} "
            f"{v.trained_through or '-'!s:<10} {v.test_start}..{v.test_end} "
            f"{_fmt(bt.get('n_forecasts'), 'd'):>4} {_fmt(v.mae_ratio):>7} "
            f"{bt.get('best_baseline') or '-':<13} {_fmt(bt.get('best_baseline_mae_ratio')):>7} "
            f"{_fmt(bt.get('dm_best_pvalue'), '.3g'):>7} {_fmt(documents.served_coverage(bt, v.method), '.1%'):>6} "
            f"{_artifact(stored.get(v.id)):>8}  {serves}  {_scope(bt)}"
        )


def _artifact(size: int | None) -> str:
    """An artifact's size, or `pruned` (retention kept the version's figures only)."""
    return "pruned" if size is None else f"{size / 1024:.0f} KB"


def _scope(backtest: dict) -> str:
    info = backtest.get("universe")
    if not isinstance(info, dict):
        return "ticker"
    how = ", warm start" if info.get("warm_start") else ""
    tickers, members = info.get("tickers"), info.get("members")
    return (
        f"universe ({tickers} ticker{'' if tickers == 1 else 's'}, {info.get('windows')} windows, "
        f"{members} network{'' if members == 1 else 's'}, through {info.get('trained_through')}"
        f"{how})"
    )


COMMANDS = [train, evaluate, predict, models]
