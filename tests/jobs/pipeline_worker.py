"""A pipeline run in its own process, for the crash and concurrency tests.

    python pipeline_worker.py [--wait-for-go] [--die-before-promotion] [--slow-train S] [--short]
        TICKER...

Configuration comes from the environment (DATABASE_URL, STOCKCAST_*), as for `stockcast run-now`.
--die-before-promotion kills the process (os._exit, no cleanup) after the new version and its
artifact are written to the database and before they are committed. --slow-train adds S seconds to every training,
so that two processes started together are sure to overlap. --wait-for-go is a barrier: once
everything is imported, the worker prints `ready` and starts when `go` arrives on its stdin.
--short fetches the short sample histories of jobhelpers.ShortSample (quick to train).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from jobhelpers import ShortSample, factory_of, run_pipeline

from forecaster import training
from forecaster.logs import configure_logging
from forecaster.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tickers", nargs="+")
    parser.add_argument("--wait-for-go", action="store_true")
    parser.add_argument("--die-before-promotion", action="store_true")
    parser.add_argument("--slow-train", type=float, default=0.0)
    parser.add_argument("--force-train", action="store_true")
    parser.add_argument("--short", action="store_true")
    args = parser.parse_args()
    settings = Settings.from_env()
    configure_logging("INFO", "text")
    if args.die_before_promotion:
        from forecaster import artifacts

        real_store = artifacts.store

        def store_then_die(*a: Any) -> None:
            real_store(*a)  # flushed to the database, not committed
            os._exit(137)  # like SIGKILL: no finally blocks, no rollback, no lock release

        artifacts.store = store_then_die
    if args.slow_train:
        real_train = training.train

        def slow(*a: Any, **k: Any) -> training.TrainingOutcome:
            time.sleep(args.slow_train)  # a long training, for the lock and overlap tests
            return real_train(*a, **k)

        training.train = slow
    if args.wait_for_go:
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            sys.exit(2)  # the test gave up (its end of the pipe closed): never run unbidden
    factory = factory_of(ShortSample()) if args.short else None
    report = run_pipeline(
        settings, args.tickers, force_train=args.force_train, provider_factory=factory
    )
    print(f"run {report.run_id} {report.status}", flush=True)
    sys.exit(0 if report.status in ("succeeded", "skipped") else 1)


if __name__ == "__main__":
    main()
