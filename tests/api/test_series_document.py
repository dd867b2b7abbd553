"""What is kept on write (forecaster/storage/touch.py): every write of a ticker's prices,
forecasts, backtest record, actions, suspect flag or model versions renders its series document
(forecaster/series_document.py) and stores its dashboard state (forecaster/storage/dashboard.py)
again in that transaction, so the whole-history `/v1/series/<ticker>` is one read and the summary
reads a row per ticker, and both always equal what is computed now."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from datetime import date

import pandas as pd
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, delete, select, text
from sqlalchemy.orm import Session, sessionmaker
from test_history_export import RECORD

from forecaster import backtest_record, migrate, series_document, service, storage
from forecaster.providers.sample import SampleProvider
from forecaster.settings import Settings


def stored(sessions: sessionmaker[Session], symbol: str = "GOOG") -> bytes | None:
    with sessions() as s:
        body = series_document.read(s, symbol)
    return None if body is None else gzip.decompress(body)


def rendered(sessions: sessionmaker[Session], symbol: str = "GOOG") -> bytes:
    with sessions() as s:
        row = storage.get_ticker(s, symbol)
        assert row is not None
        return series_document.body(s, row)


def states_agree(sessions: sessionmaker[Session]) -> list[storage.TickerState]:
    """The stored states (every ticker with data has a row) equal the computed ones."""
    with sessions() as s:
        stored = storage.ticker_states(s)
        computed = storage.computed_states(s, [t.id for t in stored])
        rows = s.scalars(select(storage.TickerStateRow.ticker_id)).all()
    assert stored == sorted(computed, key=lambda t: t.symbol)
    assert set(rows) == {t.id for t in stored if t.last_date is not None}
    return stored


def goog(s: Session) -> storage.Ticker:
    row = storage.get_ticker(s, "GOOG")
    assert row is not None
    return row


def test_the_whole_history_is_the_stored_document(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    now = rendered(sessions)
    assert stored(sessions) == now  # written by the seed's own transaction
    zipped = client.get("/v1/series/GOOG", headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.status_code == 200 and zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.data) == now
    plain = client.get("/v1/series/GOOG")
    assert "Content-Encoding" not in plain.headers and plain.data == now
    assert plain.headers["Content-Type"] == "application/json"
    with sessions.begin() as s:  # no document yet (a database from before 0013): rendered per call
        s.execute(delete(storage.SeriesDocument))
    assert client.get("/v1/series/GOOG").data == now
    assert client.get("/v1/series/NOPE").status_code == 404


def _earlier_days(s: Session) -> None:
    service.backfill_ticker(s, SampleProvider(), "GOOG", date(2013, 1, 14), date(2013, 2, 1))


def _forecast(s: Session) -> None:
    row = goog(s)
    champion = storage.champion(s, row.id)
    assert champion is not None
    storage.upsert_prediction(
        s,
        {
            "ticker_id": row.id,
            "model_version_id": champion.id,
            "as_of_date": date(2013, 3, 4),
            "target_date": date(2013, 3, 5),
            "last_close": 800.0,
            "predicted_close": 801.0,
            "lower": 790.0,
            "upper": 812.0,
            "coverage": 0.9,
        },
    )


def _action(s: Session) -> None:
    frame = pd.DataFrame({"kind": ["dividend"], "value": [0.5]}, index=[pd.Timestamp("2013-02-11")])
    assert storage.store_actions(s, goog(s), frame, "sample") == 1


def _record(s: Session) -> None:
    row = goog(s)
    champion = storage.champion(s, row.id)
    assert champion is not None
    backtest_record.store(s, row.id, champion.id, RECORD)


def _suspect(s: Session) -> None:
    row = goog(s)
    row.suspect_day, row.suspect_note = date(2013, 2, 20), "a move"


def _champion(s: Session) -> None:
    gspc = storage.get_ticker(s, "^GSPC")
    assert gspc is not None
    template = storage.champion(s, goog(s).id)
    assert template is not None
    s.add(
        storage.ModelVersion(
            **{
                c.key: getattr(template, c.key)
                for c in storage.ModelVersion.__table__.columns
                if c.key not in ("id", "ticker_id", "status", "method")
            },
            ticker_id=gspc.id,
            status="champion",
            method="drift",
        )
    )


def _swap_history(s: Session) -> None:
    prices = storage.load_prices(s, goog(s).id)
    storage.replace_prices(s, goog(s), prices.iloc[5:], source="sample", adjusted=True)


@pytest.mark.parametrize(
    "write",
    [_earlier_days, _forecast, _action, _record, _suspect, _swap_history, _champion],
    ids=lambda f: f.__name__,
)
def test_every_write_renders_the_document_again(
    client: FlaskClient, sessions: sessionmaker[Session], write: Callable[[Session], None]
) -> None:
    before, states_before = stored(sessions), states_agree(sessions)
    with sessions.begin() as s:
        write(s)
    if write is _champion:  # ^GSPC's state, not GOOG's series
        assert states_agree(sessions) != states_before
        return
    after = stored(sessions)
    assert after != before and after == rendered(sessions)
    assert client.get("/v1/series/GOOG").data == after
    states_agree(sessions)


def test_a_rolled_back_write_leaves_the_document(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    before = stored(sessions)
    with sessions() as s:
        _forecast(s)
        s.rollback()
        goog(s).name = "renamed"  # a commit that touches nothing the series shows
        s.commit()
    assert stored(sessions) == before == rendered(sessions)


def test_a_purge_takes_the_document(sessions: sessionmaker[Session], client: FlaskClient) -> None:
    with sessions.begin() as s:
        storage.purge_ticker(s, goog(s))
    assert stored(sessions) is None
    assert [t.symbol for t in states_agree(sessions)] == ["^GSPC"]
    assert client.get("/v1/series/GOOG").status_code == 404


def test_a_document_that_fails_to_render_costs_no_data_even_on_a_database_error(
    client: FlaskClient, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(s: Session, _row: storage.Ticker) -> bytes:
        s.execute(text("SELECT * FROM no_such_table"))  # on PostgreSQL: an aborted transaction
        raise AssertionError("unreachable")

    monkeypatch.setattr(series_document, "body", broken)
    with sessions.begin() as s:
        _forecast(s)
    monkeypatch.undo()
    assert stored(sessions) is None  # dropped, not left stale
    with sessions() as s:
        assert storage.latest_forecast(s, "GOOG") is not None  # the forecast committed
    served = client.get("/v1/series/GOOG")
    assert served.status_code == 200 and served.data == rendered(sessions)
    assert served.get_json()["forecasts"]["as_of"][-1] == "2013-03-04"


def test_states_of_tickers_without_a_row_are_computed(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as s:
        storage.get_or_create_ticker(s, "NEWCO", "sample")  # no data yet: nothing to keep
        s.execute(
            delete(storage.TickerStateRow).where(storage.TickerStateRow.ticker_id == goog(s).id)
        )
    with sessions() as s:
        states = {t.symbol: t for t in storage.ticker_states(s)}
        assert states["GOOG"] == storage.computed_states(s, [goog(s).id])[0]
        assert states["GOOG"].as_of == date(2013, 3, 1) and states["GOOG"].method == "lstm"
        assert states["NEWCO"].last_date is None and states["NEWCO"].as_of is None
    body = client.get("/v1/summary?sort=ticker").get_json()
    assert [r["ticker"] for r in body["tickers"]] == ["GOOG", "NEWCO", "^GSPC"]


def test_migration_0014_fills_every_state(
    client: FlaskClient, sessions: sessionmaker[Session], settings: Settings, engine: Engine
) -> None:
    url = settings.resolved_database_url
    engine.dispose()
    migrate.downgrade(url, "0013")
    migrate.upgrade(url)
    assert len(states_agree(sessions)) == 2


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_concurrent_writers_of_a_ticker_derive_from_each_others_writes(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    """Two transactions write GOOG at once. The first to commit holds GOOG's row from its
    render to its commit, so the second renders after it and includes both writes (without the
    lock, each would render from its own snapshot and the later commit would lose the other's).
    SQLite serialises writers with its database lock."""
    first_rendered, go = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pause(session: Session, _touched: set[int]) -> None:
        if session.info.get("pause"):
            first_rendered.set()
            assert go.wait(30)

    def run(write: Callable[[Session], None], pause_it: bool) -> None:
        try:
            with sessions.begin() as s:
                s.info["pause"] = pause_it
                write(s)
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    storage.on_touched_commit(pause)
    try:
        a = threading.Thread(target=run, args=(_forecast, True))
        a.start()
        assert first_rendered.wait(30)  # A holds GOOG and has rendered without B's days
        b = threading.Thread(target=run, args=(_earlier_days, False))
        b.start()
        with sessions() as s:  # B is waiting for GOOG's row: a lock wait, not a sleep
            deadline = time.monotonic() + 60  # a loaded machine may take B a while to get there
            while time.monotonic() < deadline:
                waiting = s.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                )
                if waiting or not b.is_alive():
                    break
                threading.Event().wait(0.05)
            activity = s.execute(
                text(
                    "SELECT state, wait_event_type, wait_event, left(query, 60) FROM "
                    "pg_stat_activity WHERE datname = current_database()"
                )
            ).all()
            assert waiting == 1, (errors, activity)
        go.set()
        a.join(30)
        b.join(30)
    finally:
        touch_hooks = storage.touch_hooks()
        touch_hooks.remove(pause)
    assert not errors
    doc = json.loads(stored(sessions) or b"{}")
    assert doc["forecasts"]["as_of"][-1] == "2013-03-04"  # A's forecast
    assert doc["closes"]["date"][0] == "2013-01-14"  # B's earlier days
    assert stored(sessions) == rendered(sessions)
    states_agree(sessions)
