"""Invariants the database itself enforces, on SQLite and PostgreSQL: the ORM is not trusted."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from forecaster import storage


def version(ticker_id: int, number: int, status: str) -> storage.ModelVersion:
    figures: dict[str, Any] = dict(
        mae=1.0, persistence_mae=1.0, mae_ratio=1.0, interval_halfwidth=0.02, interval_coverage=0.9
    )
    return storage.ModelVersion(
        ticker_id=ticker_id,
        version=number,
        status=status,
        config={},
        train_start=date(2020, 1, 1),
        train_end=date(2020, 6, 1),
        test_start=date(2020, 6, 2),
        test_end=date(2020, 12, 31),
        n_train=100,
        train_seconds=0.1,
        metrics={},
        **figures,
    )


@pytest.fixture
def tickers(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as s:
        ids = {sym: storage.get_or_create_ticker(s, sym, "sample").id for sym in ("GOOG", "AAPL")}
    return ids


def champions(sessions: sessionmaker[Session]) -> list[tuple[int, int]]:
    with sessions() as s:
        query = select(storage.ModelVersion.ticker_id, storage.ModelVersion.version).where(
            storage.ModelVersion.status == "champion"
        )
        return sorted((row.ticker_id, row.version) for row in s.execute(query))


def test_at_most_one_champion_per_ticker(
    sessions: sessionmaker[Session], tickers: dict[str, int]
) -> None:
    """uq_model_versions_one_champion (migration 0001): unique ticker_id where status = champion."""
    goog, aapl = tickers["GOOG"], tickers["AAPL"]
    with sessions.begin() as s:
        # any number of non-champions, and one champion per ticker for different tickers
        s.add_all([version(goog, n, st) for n, st in enumerate(("retired", "retired"), 1)])
        s.add_all([version(goog, 3, "rejected"), version(goog, 4, "candidate")])
        s.add_all([version(goog, 5, "champion"), version(aapl, 1, "champion")])

    with pytest.raises(IntegrityError), sessions.begin() as s:  # a second champion: inserted
        s.add(version(goog, 6, "champion"))
    with pytest.raises(IntegrityError), sessions.begin() as s:  # ... or promoted in place
        s.execute(
            update(storage.ModelVersion)
            .where(storage.ModelVersion.ticker_id == goog, storage.ModelVersion.version == 4)
            .values(status="champion")
        )

    assert champions(sessions) == sorted([(goog, 5), (aapl, 1)])
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(storage.ModelVersion)) == 6
    # retiring the champion first frees the slot: the order the registry promotes in
    with sessions.begin() as s:
        for number, status in ((5, "retired"), (4, "champion")):
            s.execute(
                update(storage.ModelVersion)
                .where(
                    storage.ModelVersion.ticker_id == goog, storage.ModelVersion.version == number
                )
                .values(status=status)
            )
    assert champions(sessions) == sorted([(goog, 4), (aapl, 1)])
