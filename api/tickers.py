"""GET /v1/tickers"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import select

from api.context import db
from api.params import reject_unknown
from api.serialize import iso, num
from forecaster import storage

bp = Blueprint("tickers", __name__)


@bp.get("/v1/tickers")
def list_tickers() -> Response:
    reject_unknown(())
    session = db()
    champions = dict(
        session.execute(
            select(storage.ModelVersion.ticker_id, storage.ModelVersion.version).where(
                storage.ModelVersion.status == "champion"
            )
        )
        .tuples()
        .all()
    )
    ids = dict(session.execute(select(storage.Ticker.symbol, storage.Ticker.id)).tuples().all())
    rows = storage.ticker_summaries(session)
    return jsonify(
        {
            "tickers": [
                {
                    "ticker": r.symbol,
                    "provider": r.provider,
                    "rows": r.rows,
                    "first_date": iso(r.first_date),
                    "last_date": iso(r.last_date),
                    "last_close": num(r.last_close, 4),
                    "champion_version": champions.get(ids[r.symbol]),
                }
                for r in rows
            ]
        }
    )
