"""`stockcast train`, `evaluate`, `predict`, `models list`: the forecasting use cases."""

from __future__ import annotations

import click

from cli.context import AppContext, pass_app
from cli.data import parse_day, resolve_tickers
from forecaster import locks, service, storage
from forecaster.errors import StockcastError


def _fmt(value: object, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(report_dict: dict) -> None:
    """A metrics table: the model and every baseline on the same held-out days."""
    click.echo(f"  {'method':<15} {'MAE':>10} {'RMSE':>10} {'MAPE %':>8} {'dir. acc.':>9}")
    for method, m in report_dict["metrics"].items():
        da = m.get("directional_accuracy")
        click.echo(
            f"  {method:<15} {_fmt(m['mae'])!s:>10} {_fmt(m['rmse'])!s:>10} "
            f"{_fmt(m['mape'], '.3f')!s:>8} {_fmt(da, '.3f') if da is not None else 'n/a':>9}"
        )
    click.echo(f"  MAE ratio model/persistence: {report_dict['mae_ratio']:.4f}")


def _each(app: AppContext, symbols: list[str], label: str, work: object) -> int:
    """Run `work` per ticker in its own transaction."""
    failures = 0
    for symbol in symbols:
        try:
            with app.transaction() as session:
                work(session, symbol)  # type: ignore[operator]
        except StockcastError as exc:
            failures += 1
            click.echo(f"{symbol}: error: {exc}", err=True)
    return failures


@click.command()
@click.argument("tickers", nargs=-1)
@pass_app
def train(app: AppContext, tickers: tuple[str, ...]) -> None:
    """Train, evaluate and register a new model version for TICKERS (default: tracked tickers),
    then forecast the next trading day with the champion.

    The version becomes champion only if it is no worse than persistence (within
    STOCKCAST_PERSISTENCE_TOLERANCE) and than the current champion on the same window.
    """
    symbols = resolve_tickers(app, tickers)
    app.check_schema()
    # The pipeline's step on stored prices: no transaction stays open while the network trains.
    options = service.RefreshOptions(fetch=False, force_train=True)
    failures = 0
    for symbol in symbols:
        click.echo(f"{symbol}: training ...", err=True)
        try:
            # The pipeline's lock: never two trainings of one ticker at once (scheduler, CLI).
            with locks.hold(app.engine, locks.ticker_lock_name(symbol)):
                outcome = service.refresh_ticker(app.settings, symbol, options, engine=app.engine)
        except StockcastError as exc:
            outcome = service.StepOutcome(symbol, status="failed", error=str(exc))
        if outcome.status == "failed":
            failures += 1
            click.echo(f"{symbol}: error: {outcome.error}", err=True)
            continue
        _echo_trained(app, outcome)
    if failures:
        raise click.ClickException("training failed for some tickers")


def _echo_trained(app: AppContext, outcome: service.StepOutcome) -> None:
    symbol = outcome.ticker
    with app.transaction() as session:
        v = session.get(storage.ModelVersion, outcome.model_version_id)
        verdict = "champion" if outcome.promoted else f"rejected: {v.rejection_reason}"
        click.echo(
            f"{symbol}: v{v.version} trained on {v.n_train} windows in {v.train_seconds:.1f}s; "
            f"test {v.test_start}..{v.test_end}: MAE {v.mae:.4f} vs persistence "
            f"{v.persistence_mae:.4f} (ratio {v.mae_ratio:.4f}) -> {verdict}"
        )
    forecast = outcome.forecast
    if forecast is not None:
        click.echo(
            f"{symbol}: {forecast['target_date']} close forecast "
            f"{forecast['predicted_close']:.2f} (champion v{forecast['model_version']})"
        )


@click.command()
@click.argument("ticker")
@click.option("--start", help="First forecast origin (default: the champion's own test window).")
@pass_app
def evaluate(app: AppContext, ticker: str, start: str | None) -> None:
    """Walk-forward evaluation of TICKER's champion against the baselines on unseen days."""
    begin = parse_day(start, "--start")
    with app.transaction() as session:
        result = service.evaluate_ticker(session, app.settings, ticker, begin)
        v = result.model_version
        report = result.report.to_dict()
        symbol = v.ticker.symbol
    click.echo(
        f"{symbol} champion v{v.version}: walk-forward from {result.start} "
        f"({report['n']} forecasts, model fixed, one step ahead)"
    )
    print_report(report)


@click.command()
@click.argument("tickers", nargs=-1)
@pass_app
def predict(app: AppContext, tickers: tuple[str, ...]) -> None:
    """Forecast the next trading day's close for TICKERS with their champions and store it."""
    symbols = resolve_tickers(app, tickers)

    def work(session: object, symbol: str) -> None:
        p = service.predict_ticker(session, app.settings, symbol)  # type: ignore[arg-type]
        click.echo(
            f"{symbol}: {p.target_date} close forecast {p.predicted_close:.2f} "
            f"[{p.lower:.2f}, {p.upper:.2f}] ({p.coverage:.0%} interval); "
            f"last close {p.last_close:.2f} on {p.as_of_date}"
        )

    if _each(app, symbols, "predict", work):
        raise click.ClickException("prediction failed for some tickers")


@click.group()
def models() -> None:
    """Model versions."""


@models.command("list")
@click.argument("ticker")
@pass_app
def models_list(app: AppContext, ticker: str) -> None:
    """Model versions of TICKER, newest first, with metrics and promotion decisions."""
    with app.transaction() as session:
        row = service.require_ticker(session, ticker)
        versions = storage.model_versions(session, row.id)
    if not versions:
        click.echo(f"{row.symbol}: no model versions yet; run `stockcast train {row.symbol}`")
        return
    click.echo(
        f"{'ver':>4} {'status':<9} {'trained':<16} {'test window':<23} {'MAE':>10} {'ratio':>7}  reason"
    )
    for v in versions:
        click.echo(
            f"{v.version:>4} {v.status:<9} {v.trained_at:%Y-%m-%d %H:%M} "
            f"{v.test_start}..{v.test_end} {v.mae:10.4f} {v.mae_ratio:7.4f}  {v.rejection_reason or ''}"
        )


COMMANDS = [train, evaluate, predict, models]
