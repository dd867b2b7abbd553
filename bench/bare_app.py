"""Two bare Flask routes, the yardsticks of bench/api_load.py: what a route costs with nothing of
stockcast in it. `/hello` returns a constant JSON body; `/read` does one read of the newest
prediction through SQLAlchemy Core (pooled connections, as stockcast's engine has) and returns it.

gunicorn serves it as `bench.bare_app:app` (DATABASE_URL names the database).
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response
from sqlalchemy import create_engine, text

HELLO = json.dumps({"hello": "world"}).encode()
NEWEST = text(
    "SELECT as_of_date, predicted_close, lower, upper FROM predictions "
    "ORDER BY as_of_date DESC LIMIT 1"
)


def create_app() -> Flask:
    app = Flask(__name__)
    engine = create_engine(os.environ["DATABASE_URL"], pool_size=8)

    @app.get("/hello")
    def hello() -> Response:
        return Response(HELLO, mimetype="application/json")

    @app.get("/read")
    def read() -> Response:
        with engine.connect() as conn:
            row = conn.execute(NEWEST).one()
        body = {
            "as_of": str(row.as_of_date),
            "predicted_close": row.predicted_close,
            "interval": [row.lower, row.upper],
        }
        return Response(json.dumps(body), mimetype="application/json")

    return app


app = create_app()
