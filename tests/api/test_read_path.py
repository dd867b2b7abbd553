"""The forecast read path: the document stored with the prediction is the response body, byte
for byte, served with one indexed read; a promotion after it was stored shows in model.status;
rows without a document are rendered as before; conditional requests answer 304."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from api import create_app, if_none_match
from forecaster import migrate, service, storage
from forecaster.predict import render_again
from forecaster.settings import Settings

BACKTEST = {
    "scheme": "rolling-origin",
    "folds": 2,
    "n_forecasts": 40,
    "start": "2013-01-02",
    "end": "2013-02-28",
    "mae": 6.1234567,
    "persistence_mae": 6.5,
    "mae_ratio": 0.942,
    "best_baseline": "persistence",
    "best_baseline_mae": 6.5,
    "best_baseline_mae_ratio": 0.942,
    "dm_stat": -1.23456,
    "dm_pvalue": 0.11,
    "dm_best_stat": -1.23456,
    "dm_best_pvalue": 0.11,
    "coverage": 0.9,
    "coverage_by_method": {"model": 0.9, "persistence": 0.85},
    "nominal_coverage": 0.9,
    "metrics": {
        "model": {"mae": 6.12, "rmse": 7.5, "mape": 0.9, "directional_accuracy": 0.55},
        "persistence": {"mae": 6.5, "rmse": 8.0, "mape": 1.0, "directional_accuracy": None},
    },
}


def add_champion(s: Session, symbol: str, version: int, method: str = "persistence") -> None:
    """A champion serving a baseline (predict_ticker needs no network for it), retiring the
    current one as the registry does."""
    ticker = storage.get_ticker(s, symbol)
    assert ticker is not None
    current = storage.champion(s, ticker.id)
    if current is not None:
        current.status = "retired"
        s.flush()
        render_again(s, ticker)
    s.add(
        storage.ModelVersion(
            ticker_id=ticker.id,
            version=version,
            status="champion",
            config={"window": 7},
            train_start=date(2011, 1, 3),
            train_end=date(2013, 2, 28),
            trained_through=date(2013, 2, 28),
            test_start=date(2013, 1, 2),
            test_end=date(2013, 2, 28),
            n_train=300,
            train_seconds=1.5,
            mae=6.1234567,
            persistence_mae=6.5,
            mae_ratio=0.942,
            interval_halfwidth=0.02,
            interval_coverage=0.9,
            metrics={
                "backtest": BACKTEST,
                "serving": {
                    "median_log_return": 0.0004,
                    "interval_scales": {"model": 1.6, method: 1.7},
                },
            },
            method=method,
            method_reason="no evidence of skill: the best baseline serves",
            trained_at=datetime(2013, 3, 1, 6, 0, 0, 123456),
        )
    )
    s.flush()


def uncached(app: Flask, settings: Settings, engine: Engine) -> Flask:
    return create_app(settings.replace(api_response_ttl=0), engine)


def rendered_from_rows(sessions: sessionmaker[Session], app: Flask) -> bytes:
    """Today's body, rendered from the rows: the documents set aside."""
    with sessions.begin() as s:
        saved = dict(s.execute(select(storage.Prediction.id, storage.Prediction.document)).all())
        s.execute(update(storage.Prediction).values(document=None))
    body = app.test_client().get("/v1/forecasts/GOOG").get_data()
    with sessions.begin() as s:
        for pid, document in saved.items():
            s.execute(
                update(storage.Prediction)
                .where(storage.Prediction.id == pid)
                .values(document=document)
            )
    return body


def test_predict_stores_the_response_body_byte_for_byte(
    app: Flask, settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    before = uncached(app, settings, engine)
    with sessions.begin() as s:
        add_champion(s, "GOOG", 4)
    with sessions.begin() as s:
        prediction = service.predict_ticker(s, settings, "GOOG")
        pid = prediction.id
    with sessions() as s:
        document = s.scalar(select(storage.Prediction.document).where(storage.Prediction.id == pid))
    assert document is not None
    served = before.test_client().get("/v1/forecasts/GOOG")
    assert served.status_code == 200
    assert served.get_data() == document.encode()
    assert served.get_data() == rendered_from_rows(sessions, before)  # as the view renders it
    body = served.get_json()
    assert body["model"]["version"] == 4 and body["model"]["status"] == "champion"
    assert body["model"]["backtest"]["dm_stat"] == -1.2346


def test_a_promotion_after_the_forecast_shows_in_its_model_status(
    app: Flask, settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    client = uncached(app, settings, engine).test_client()
    with sessions.begin() as s:
        add_champion(s, "GOOG", 4)
    with sessions.begin() as s:
        service.predict_ticker(s, settings, "GOOG")
    assert client.get("/v1/forecasts/GOOG").get_json()["model"]["status"] == "champion"
    with sessions.begin() as s:
        add_champion(s, "GOOG", 5)  # promoted after the forecast was stored: v4 retired
    served = client.get("/v1/forecasts/GOOG")
    assert served.get_json()["model"]["status"] == "retired"
    assert served.get_json()["model"]["version"] == 4
    assert served.get_data() == rendered_from_rows(sessions, uncached(app, settings, engine))


def test_migrations_0015_and_0016_replace_stale_and_missing_documents(
    app: Flask, settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """Before 0015 a promotion left the document saying "champion" (readers patched it): 0015
    clears it, and 0016 renders each ticker's newest forecast without a document (this one, and
    rows written before documents existed), as a forecast stored now would be."""
    with sessions.begin() as s:
        add_champion(s, "GOOG", 4)
    with sessions.begin() as s:
        service.predict_ticker(s, settings, "GOOG")
        stale = s.scalar(select(storage.Prediction.document).order_by(storage.Prediction.id.desc()))
    with sessions.begin() as s:
        add_champion(s, "GOOG", 5)
    url = settings.resolved_database_url
    engine.dispose()
    migrate.downgrade(url, "0014")
    with sessions.begin() as s:  # as an older release left it
        s.execute(
            update(storage.Prediction)
            .where(storage.Prediction.document.is_not(None))
            .values(document=stale)
        )
    migrate.upgrade(url, "0015")
    with sessions() as s:
        documents = s.scalars(select(storage.Prediction.document)).all()
    assert documents and all(d is None for d in documents)  # every seeded forecast is v2's or v4's
    expected = rendered_from_rows(sessions, uncached(app, settings, engine))
    engine.dispose()
    migrate.upgrade(url)
    with sessions() as s:
        newest = s.scalar(select(storage.Prediction).order_by(storage.Prediction.as_of_date.desc()))
        assert newest is not None and newest.document is not None
        assert sum(d is not None for d in s.scalars(select(storage.Prediction.document))) == 1
    served = uncached(app, settings, engine).test_client().get("/v1/forecasts/GOOG")
    assert served.get_json()["model"]["status"] == "retired"
    assert served.get_data() == expected == newest.document.encode()


def test_the_hot_path_is_one_select_and_no_session(
    app: Flask,
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served_app = uncached(app, settings, engine)
    with sessions.begin() as s:
        add_champion(s, "GOOG", 4)
    with sessions.begin() as s:
        service.predict_ticker(s, settings, "GOOG")
    client = served_app.test_client()
    client.get("/v1/forecasts/GOOG")  # connections pooled

    def no_session() -> Any:
        raise AssertionError("the hot path opened an ORM session")

    monkeypatch.setattr(served_app.extensions["stockcast"], "sessions", no_session)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get("/v1/forecasts/GOOG").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")


def test_rows_without_a_document_and_missing_forecasts_keep_their_answers(
    app: Flask, settings: Settings, engine: Engine
) -> None:
    client = uncached(app, settings, engine).test_client()
    # The seeded rows predate documents: rendered from the rows.
    assert client.get("/v1/forecasts/GOOG").get_json()["model"]["version"] == 2
    unknown = client.get("/v1/forecasts/NOPE")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "unknown_ticker"
    none_yet = client.get("/v1/forecasts/%5EGSPC")
    assert none_yet.status_code == 404
    assert none_yet.get_json() == {
        "error": {
            "code": "no_forecast",
            "message": "^GSPC: no forecast yet; run `stockcast predict ^GSPC`",
        }
    }
    assert client.get("/v1/forecasts/GOOG?x=1").status_code == 400


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ("abc", True),
        ('W/"abc"', True),
        ('w/"abc"', True),
        ('"x", "abc"', True),
        ('"x",W/"abc"', True),
        ("*", True),
        (" * ", False),  # as werkzeug: only a bare * is the star tag
        ('"x", *', False),
        ('"abcd"', False),
        ('"ab"', False),
        ("", False),
    ],
)
def test_if_none_match_parses_as_werkzeug_does(header: str, matches: bool) -> None:
    from werkzeug.http import parse_etags

    assert if_none_match(header, "abc") is matches
    assert parse_etags(header).contains_weak("abc") is matches


def test_conditional_requests(app: Flask) -> None:
    client = app.test_client()
    first = client.get("/v1/forecasts/GOOG")
    etag = first.headers["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get("/v1/forecasts/GOOG", headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.get_data() == b""
        assert again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == "public, max-age=60"
    assert client.get("/v1/forecasts/GOOG", headers={"If-None-Match": '"x"'}).status_code == 200
    # If-Match keeps werkzeug's own handling: a mismatch is 412, a match 200.
    assert client.get("/v1/forecasts/GOOG", headers={"If-Match": '"x"'}).status_code == 412
    assert client.get("/v1/forecasts/GOOG", headers={"If-Match": etag}).status_code == 200
    # Other /v1/ responses still get an ETag of their body.
    tickers = client.get("/v1/tickers")
    again = client.get("/v1/tickers", headers={"If-None-Match": tickers.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {}),
        ("HEAD", {}),
        ("GET", {"If-None-Match": "ETAG"}),
        ("HEAD", {"If-None-Match": "W/ETAG"}),
        ("GET", {"If-None-Match": '"other"'}),
    ],
)
@pytest.mark.parametrize("path", ["/v1/forecasts/GOOG", "/v1/series/GOOG?limit=5"])
def test_a_replayed_response_is_what_flask_answered(
    app: Flask,
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    path: str,
    method: str,
    headers: dict[str, str],
) -> None:
    """The response cache (api/middleware.py) replays the status, headers and body Flask gave,
    counted in the same metrics; Flask is the one handler."""
    with sessions.begin() as s:
        add_champion(s, "GOOG", 4)
    with sessions.begin() as s:
        service.predict_ticker(s, settings, "GOOG")
    etag = app.test_client().get(path).headers["ETag"]
    headers = {k: v.replace("ETAG", etag) for k, v in headers.items()}

    def answer(application: Flask) -> tuple[str, list[tuple[str, str]], bytes]:
        r = application.test_client().open(path, method=method, headers=headers)
        return r.status, list(r.headers.items()), r.get_data()

    flask_only = uncached(app, settings, engine)
    flask_path = answer(flask_only)
    cached = create_app(settings, engine)
    cached.test_client().get(path)  # kept
    reads: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        reads.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert answer(cached) == flask_path
        assert answer(cached) == flask_path
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert reads == []  # replayed: no database read
    status = flask_path[0].split()[0]
    rule = "/v1/forecasts/<ticker>" if "forecasts" in path else "/v1/series/<ticker>"
    kept = 1 if (method, status) == ("GET", "200") else 0  # the GET that filled the cache
    for application, count in ((flask_only, 1), (cached, 2 + kept)):
        text = application.test_client().get("/metrics").get_data(as_text=True)
        expected = (
            f'stockcast_http_requests_total{{method="{method}",'
            f'route="{rule}",status="{status}"}} {count}.0'
        )
        assert expected in text


def test_what_is_not_a_plain_200_is_never_replayed(
    app: Flask, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors, a whole series sent gzip per client (Vary), HEAD and routes not declared
    `replayed` go to Flask every time; a database error is Flask's 503, then a 200 once it is
    back."""
    client = create_app(settings, engine).test_client()
    responses = client.application.extensions["stockcast"].responses
    for path in ("/v1/forecasts/NOPE", "/v1/forecasts/%5EGSPC", "/v1/forecasts/GOOG?x=1"):
        assert client.get(path).status_code in (400, 404)
    assert client.head("/v1/forecasts/GOOG").status_code == 200
    assert client.get("/v1/series/GOOG", headers={"Accept-Encoding": "gzip"}).status_code == 200
    assert client.get("/v1/tickers").status_code == 200
    assert responses._items == {}

    real = storage.latest_document
    calls: list[str] = []

    def failing_once(conn: Any, symbol: str) -> Any:
        calls.append(symbol)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return real(conn, symbol)

    monkeypatch.setattr(storage, "latest_document", failing_once)
    down = client.get("/v1/forecasts/GOOG")
    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
    assert down.get_json()["error"]["code"] == "database_unavailable"
    assert client.get("/v1/forecasts/GOOG").status_code == 200
    assert client.get("/v1/forecasts/GOOG").status_code == 200
    assert calls == ["GOOG", "GOOG"]  # the third answer was replayed

    def broken(_conn: object, _symbol: str) -> tuple[str | None] | None:
        raise RuntimeError("a bug in the read")

    monkeypatch.setattr(storage, "latest_document", broken)
    failed = uncached(app, settings, engine).test_client().get("/v1/forecasts/GOOG")
    assert failed.status_code == 500
    assert failed.get_json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }


def test_revalidations_fill_the_cache_and_a_read_of_a_replaced_file_is_not_kept(
    app: Flask, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients that only revalidate (If-None-Match) are replayed too: the first one's 304 fills
    the cache. A response read while the database file was being replaced is never kept."""
    etag = app.test_client().get("/v1/forecasts/GOOG").headers["ETag"]
    cached = create_app(settings, engine)
    state = cached.extensions["stockcast"]
    client = cached.test_client()
    revalidate = {"If-None-Match": etag}
    assert client.get("/v1/forecasts/GOOG", headers=revalidate).status_code == 304
    assert state.responses.get(("/v1/forecasts/GOOG", "")) is not None
    reads: list[str] = []
    real = storage.latest_document

    def counted(conn: Any, symbol: str) -> Any:
        reads.append(symbol)
        return real(conn, symbol)

    monkeypatch.setattr(storage, "latest_document", counted)
    assert client.get("/v1/forecasts/GOOG", headers=revalidate).status_code == 304
    assert reads == []  # replayed

    state.responses.clear()

    def replaced_meanwhile(conn: Any, symbol: str) -> Any:
        state.generation += 1  # as check_database_file does when another request sees a new file
        return real(conn, symbol)

    monkeypatch.setattr(storage, "latest_document", replaced_meanwhile)
    assert client.get("/v1/forecasts/GOOG").status_code == 200
    assert state.responses._items == {}
