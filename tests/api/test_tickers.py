"""GET /v1/tickers at universe scale: pagination, filters, counts and a constant number of
queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, insert
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from forecaster import storage
from forecaster.settings import Settings

N = 600


@pytest.fixture
def big_client(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session], client: FlaskClient
) -> FlaskClient:
    """The seeded GOOG and ^GSPC plus 600 tickers T0000..T0599; every third one untracked."""
    with sessions.begin() as s:
        s.execute(
            insert(storage.Ticker),
            [
                {
                    "symbol": f"T{i:04d}",
                    "provider": "yfinance",
                    "tracked": i % 3 != 0,
                    "created_at": storage.utcnow(),
                }
                for i in range(N)
            ],
        )
    return client


def get(client: FlaskClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_pages_cover_every_ticker_once_in_symbol_order(big_client: FlaskClient) -> None:
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        body = get(big_client, f"/v1/tickers?limit=250&offset={offset}")
        assert body["total"] == N + 2 and body["limit"] == 250 and body["offset"] == offset
        seen += [t["ticker"] for t in body["tickers"]]
        offset = body["next_offset"]
        pages += 1
    assert pages == 3 and len(seen) == N + 2 == len(set(seen))
    numbered = [s for s in seen if s.startswith("T")]
    assert numbered == [f"T{i:04d}" for i in range(N)]
    default = get(big_client, "/v1/tickers")
    assert len(default["tickers"]) == 100 and default["next_offset"] == 100
    last = get(big_client, f"/v1/tickers?offset={N + 1}")
    assert len(last["tickers"]) == 1 and last["next_offset"] is None
    assert get(big_client, "/v1/tickers?offset=5000")["tickers"] == []


def test_filters_and_counts(big_client: FlaskClient) -> None:
    tracked = get(big_client, "/v1/tickers?tracked=true&limit=1000")
    assert tracked["total"] == 400 + 2 == len(tracked["tickers"])
    assert all(t["tracked"] for t in tracked["tickers"])
    untracked = get(big_client, "/v1/tickers?tracked=false&limit=7&offset=7")
    assert untracked["total"] == 200 and untracked["next_offset"] == 14
    assert [t["ticker"] for t in untracked["tickers"]] == [f"T{i:04d}" for i in range(21, 42, 3)]
    by_text = get(big_client, "/v1/tickers?q=t01&tracked=true")
    assert by_text["total"] == 67  # T0100..T0199 less the 33 multiples of 3
    assert all(t["ticker"].startswith("T01") for t in by_text["tickers"])
    goog = get(big_client, "/v1/tickers?q=goo")["tickers"]
    assert [t["ticker"] for t in goog] == ["GOOG"]
    assert goog[0]["champion_version"] == 2 and goog[0]["rows"] == 20
    assert goog[0]["last_forecast"]["as_of"] == "2013-03-01"
    assert goog[0]["last_run_status"] is None
    assert get(big_client, "/v1/tickers?q=%5EGS")["tickers"][0]["ticker"] == "^GSPC"
    # LIKE wildcards are plain text: % and _ are not symbol characters and are refused
    for bad in ("%25", "_", "T%2500", "a%20b", "", "x" * 21):
        assert get(big_client, f"/v1/tickers?q={bad}", 400)["error"]["code"] == "bad_parameter"


@pytest.mark.parametrize(
    "query",
    ["tracked=yes", "tracked=", "limit=0", "limit=1001", "offset=-1", "limit=1.5", "page=2"],
)
def test_bad_parameters_are_json_400(client: FlaskClient, query: str) -> None:
    body = get(client, f"/v1/tickers?{query}", 400)
    assert body["error"]["code"] == "bad_parameter"


def test_one_page_is_two_statements_whatever_its_size(
    big_client: FlaskClient, engine: Engine
) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        for limit in (10, 1000):
            statements.clear()
            assert len(get(big_client, f"/v1/tickers?limit={limit}")["tickers"]) == min(
                limit, N + 2
            )
            assert len(statements) == 2  # the count and the page: no query per ticker
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_max_limit_follows_the_setting(settings: Settings, engine: Engine, app: Flask) -> None:

    small = create_app(settings.replace(api_max_limit=5), engine).test_client()
    assert get(small, "/v1/tickers?limit=5")["limit"] == 5
    assert get(small, "/v1/tickers?limit=6", 400)["error"]["code"] == "bad_parameter"
