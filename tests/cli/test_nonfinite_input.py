"""A CSV with Infinity or absurd values: those rows are rejected with a reason, the others stored,
and nothing non-finite is ever stored or served (JSON has no Infinity)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from cli.main import cli
from forecaster import storage
from forecaster.settings import Settings

CSV = """date,open,high,low,close,volume
2020-01-02,10,11,9,10.5,1000
2020-01-03,10,Infinity,9,10.5,1000
2020-01-06,10,1e303,9,10.5,1000
2020-01-07,10,11,9,10.7,inf
2020-01-08,-inf,11,9,10.7,1000
2020-01-09,10,11,9,10.8,1000
"""


def _reject_constants(constant: str) -> None:
    raise ValueError(f"not JSON: {constant}")


def test_infinite_rows_are_rejected_with_reasons_and_never_served(
    env: dict[str, str], settings: Settings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "inf.csv"
    path.write_text(CSV)
    result = CliRunner().invoke(cli, ["backfill", "INFT", "--provider", "csv", "--csv", str(path)])
    assert result.exit_code == 0, result.output
    assert "inserted 2" in result.stdout and "rejected 4" in result.stdout, result.stdout
    for reason in (
        "high is infinite",
        "high exceeds 1e+12",
        "volume is infinite",
        "open is infinite",
    ):
        assert reason in result.output, reason

    with sessions() as s:
        rows = s.execute(select(storage.Price)).scalars().all()
        assert len(rows) == 2
        for row in rows:
            for column in ("open", "high", "low", "close", "volume"):
                assert math.isfinite(getattr(row, column))

    response = create_app(settings).test_client().get("/v1/prices/INFT")
    assert response.status_code == 200
    body = json.loads(response.data, parse_constant=_reject_constants)
    assert len(body["prices"]) == 2
