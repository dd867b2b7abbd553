"""The stored series document (forecaster/series_document.py): every write of a ticker's prices,
forecasts, backtest record, actions or suspect flag renders it again in that transaction, so the
whole-history `/v1/series/<ticker>` is one read and always the series rendered now."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import date

import pandas as pd
import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker
from test_history_export import RECORD

from forecaster import backtest_record, series_document, service, storage
from forecaster.providers.sample import SampleProvider


def stored(sessions: sessionmaker[Session], symbol: str = "GOOG") -> bytes | None:
    with sessions() as s:
        body = series_document.read(s, symbol)
    return None if body is None else gzip.decompress(body)


def rendered(sessions: sessionmaker[Session], symbol: str = "GOOG") -> bytes:
    with sessions() as s:
        row = storage.get_ticker(s, symbol)
        assert row is not None
        return series_document.body(s, row)


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


def _swap_history(s: Session) -> None:
    prices = storage.load_prices(s, goog(s).id)
    storage.replace_prices(s, goog(s), prices.iloc[5:], source="sample", adjusted=True)


@pytest.mark.parametrize(
    "write",
    [_earlier_days, _forecast, _action, _record, _suspect, _swap_history],
    ids=lambda f: f.__name__,
)
def test_every_write_renders_the_document_again(
    client: FlaskClient, sessions: sessionmaker[Session], write: Callable[[Session], None]
) -> None:
    before = stored(sessions)
    with sessions.begin() as s:
        write(s)
    after = stored(sessions)
    assert after != before and after == rendered(sessions)
    assert client.get("/v1/series/GOOG").data == after


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
    assert client.get("/v1/series/GOOG").status_code == 404


def test_a_document_that_fails_to_render_costs_no_data(
    client: FlaskClient, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_s: Session, _row: storage.Ticker) -> bytes:
        raise RuntimeError("render bug")

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
