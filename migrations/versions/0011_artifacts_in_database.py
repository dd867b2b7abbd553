"""model artifacts in the database: each version's `.keras` file and meta.json move into
`model_artifacts`; the version rows lose `artifact_path`

Upgrade reads every version's directory (`<artifact_path>/model.keras` and `meta.json`) into a
row; a version whose directory is gone keeps its figures without an artifact (it could not have
been loaded before either). The files are left where they were: delete the old models directory
once the upgrade is committed.

Downgrade writes every stored artifact back to a directory under `<STOCKCAST_DATA_DIR>/models`
(the old default) and points `artifact_path` at it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

NETWORK_FILE, META_FILE = "model.keras", "meta.json"

artifacts = sa.table(
    "model_artifacts",
    sa.column("model_version_id", sa.Integer()),
    sa.column("sha256", sa.String()),
    sa.column("size", sa.Integer()),
    sa.column("network", sa.LargeBinary()),
    sa.column("meta", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def _digest(network: bytes, meta: dict[str, object]) -> str:  # as forecaster.artifacts.digest
    h = hashlib.sha256(network)
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _read(directory: Path) -> tuple[bytes, dict[str, object]] | None:
    try:
        return (directory / NETWORK_FILE).read_bytes(), json.loads(
            (directory / META_FILE).read_text()
        )
    except (OSError, ValueError):
        return None


def _safe(symbol: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]", "_", symbol)


def upgrade() -> None:
    bind = op.get_bind()
    versions = sa.table(
        "model_versions",
        sa.column("id", sa.Integer()),
        sa.column("ticker_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("artifact_path", sa.String()),
        sa.column("trained_at", sa.DateTime(timezone=True)),
    )
    tickers = sa.table("tickers", sa.column("id", sa.Integer()), sa.column("symbol", sa.String()))
    rows = bind.execute(
        sa.select(
            versions.c.id, versions.c.version, versions.c.status, versions.c.artifact_path,
            tickers.c.symbol,
        ).join(tickers, tickers.c.id == versions.c.ticker_id)
    ).all()  # fmt: skip
    # Where each directory is: its recorded path, or the same name under this host's models
    # directory (a volume mounted elsewhere than on the host that recorded it).
    found: dict[int, Path] = {}
    lost_champions = []
    for version_id, number, status, path, symbol in rows:
        if not path:  # written by this migration's downgrade: it had no artifact to write
            continue
        recorded = Path(path)
        for directory in (recorded, _models_dir() / _safe(symbol) / recorded.name):
            if (directory / NETWORK_FILE).is_file():
                found[version_id] = directory
                break
        else:
            if status == "champion":
                lost_champions.append(f"{symbol} v{number}")
    if lost_champions and context.get_x_argument(as_dictionary=True).get("artifacts") != "retrain":
        raise RuntimeError(
            f"migration 0011 stopped, nothing changed: no artifact directory for "
            f"{len(lost_champions)} champion(s) ({', '.join(lost_champions[:5])}) at its recorded "
            f"path or under {_models_dir()}; mount the old models directory there (or set "
            "STOCKCAST_DATA_DIR to its parent) and upgrade again, or accept retraining them: "
            "`alembic -x artifacts=retrain upgrade head`"
        )
    op.create_table(
        "model_artifacts",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("network", sa.LargeBinary(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_model_artifacts_model_version_id_model_versions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_version_id", name="pk_model_artifacts"),
    )
    moved = 0
    for version_id, directory in found.items():  # one artifact in memory at a time
        read = _read(directory)
        if read is None:
            continue
        network, meta = read
        trained_at = bind.execute(
            sa.select(versions.c.trained_at).where(versions.c.id == version_id)
        ).scalar_one()
        bind.execute(
            artifacts.insert().values(
                model_version_id=version_id,
                sha256=_digest(network, meta),
                size=len(network),
                network=network,
                meta=meta,
                created_at=trained_at,
            )
        )
        moved += 1
    log.info("model artifacts moved into the database: %d of %d versions", moved, len(rows))
    # Plain ALTER TABLE (as in 0005): a batch copy of `model_versions` would fire the foreign
    # keys of the tables that reference it, the new artifacts included.
    op.drop_column("model_versions", "artifact_path")


def _models_dir() -> Path:
    from forecaster.settings import Settings

    return (Settings.from_env().data_dir / "models").resolve()


def downgrade() -> None:
    op.add_column(
        "model_versions", sa.Column("artifact_path", sa.String(length=500), nullable=True)
    )
    bind = op.get_bind()
    root = _models_dir()
    rows = bind.execute(
        sa.text(
            "SELECT v.id, v.version, t.symbol FROM model_versions v "
            "JOIN tickers t ON t.id = v.ticker_id"
        )
    ).all()
    written = 0
    for version_id, number, symbol in rows:
        directory = root / _safe(symbol) / f"v{number:04d}-{uuid.uuid4().hex[:8]}"
        stored = bind.execute(
            sa.text("SELECT network, meta FROM model_artifacts WHERE model_version_id = :id"),
            {"id": version_id},
        ).first()  # one artifact in memory at a time
        if stored is not None:
            network, meta = stored
            directory.mkdir(parents=True)
            (directory / NETWORK_FILE).write_bytes(bytes(network))
            if isinstance(meta, str):  # a JSON column read back as text
                meta = json.loads(meta)
            (directory / META_FILE).write_text(json.dumps(meta, indent=2))
            written += 1
        bind.execute(  # "": nothing was stored for it (an upgrade does not look for it)
            sa.text("UPDATE model_versions SET artifact_path = :path WHERE id = :id"),
            {"path": str(directory) if stored is not None else "", "id": version_id},
        )
    log.info("model artifacts written back to %s: %d", root, written)
    if bind.dialect.name != "sqlite":  # SQLite cannot add NOT NULL in place; every row has one
        op.alter_column(
            "model_versions", "artifact_path", existing_type=sa.String(length=500), nullable=False
        )
    op.drop_table("model_artifacts")
