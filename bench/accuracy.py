"""Accuracy benchmark: train on the offline sample tickers with the default Settings and print the
walk-forward test-period metrics of the model and every baseline, the MAE ratio to persistence,
and training speed. Run: .venv/bin/python bench/accuracy.py [TICKER ...]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings
from forecaster.training import train


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def main(tickers: list[str]) -> None:
    settings = Settings.from_env()
    print(
        f"settings: window={settings.window} features={','.join(settings.features)} "
        f"units={settings.lstm_units} epochs<={settings.epochs} batch={settings.batch_size} "
        f"patience={settings.patience} lr={settings.learning_rate} seed={settings.seed}"
    )
    for ticker in tickers:
        prices = SampleProvider().fetch(ticker, None, None)
        started = time.perf_counter()
        outcome = train(prices, settings, ticker)
        total = time.perf_counter() - started
        report = outcome.evaluation
        print(
            f"\n{ticker}: {len(prices)} days {prices.index[0].date()}..{prices.index[-1].date()}; "
            f"train {outcome.n_train} / val {outcome.n_val} / test {outcome.n_test} windows; "
            f"test {report.start}..{report.end}"
        )
        print(f"  {'method':<15} {'MAE':>9} {'RMSE':>9} {'MAPE %':>8} {'dir.acc':>8}")
        for method, m in report.metrics.items():
            print(
                f"  {method:<15} {m['mae']:9.4f} {m['rmse']:9.4f} {m['mape']:8.4f} "
                f"{fmt(m['directional_accuracy'], '8.4f'):>8}"
            )
        print(f"  MAE ratio model/persistence: {report.mae_ratio:.4f}")
        print(
            f"  interval: nominal {outcome.bundle.coverage:.0%}, empirical test coverage "
            f"{fmt(report.interval_coverage, '.1%')}"
        )
        print(
            f"  training: {outcome.train_seconds:.2f} s fit ({total:.2f} s with windowing and "
            f"evaluation), {outcome.epochs_run} epochs (best {outcome.best_epoch}), "
            f"{outcome.samples_per_second:,.0f} samples/s"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["^GSPC", "GOOG"])
