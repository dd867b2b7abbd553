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
from alembic import op

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


def upgrade() -> None:
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
    bind = op.get_bind()
    versions = sa.table(
        "model_versions",
        sa.column("id", sa.Integer()),
        sa.column("artifact_path", sa.String()),
        sa.column("trained_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(sa.select(versions.c.id, versions.c.artifact_path, versions.c.trained_at))
    moved, missing = 0, 0
    for version_id, path, trained_at in rows.all():
        directory = Path(path)
        try:
            network = (directory / NETWORK_FILE).read_bytes()
            meta = json.loads((directory / META_FILE).read_text())
        except (OSError, ValueError):
            missing += 1
            continue
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
    log.info("model artifacts moved into the database: %d (missing on disk: %d)", moved, missing)
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
            "SELECT v.id, v.version, t.symbol, a.network, a.meta FROM model_versions v "
            "JOIN tickers t ON t.id = v.ticker_id "
            "LEFT JOIN model_artifacts a ON a.model_version_id = v.id"
        )
    )
    written = 0
    for version_id, number, symbol, network, meta in rows.all():
        safe = re.sub(r"[^A-Za-z0-9.=-]", "_", symbol)
        directory = root / safe / f"v{number:04d}-{uuid.uuid4().hex[:8]}"
        if network is not None:
            directory.mkdir(parents=True)
            (directory / NETWORK_FILE).write_bytes(bytes(network))
            if isinstance(meta, str):  # a JSON column read back as text
                meta = json.loads(meta)
            (directory / META_FILE).write_text(json.dumps(meta, indent=2))
            written += 1
        bind.execute(
            sa.text("UPDATE model_versions SET artifact_path = :path WHERE id = :id"),
            {"path": str(directory), "id": version_id},
        )
    log.info("model artifacts written back to %s: %d", root, written)
    if bind.dialect.name != "sqlite":  # SQLite cannot add NOT NULL in place; every row has one
        op.alter_column(
            "model_versions", "artifact_path", existing_type=sa.String(length=500), nullable=False
        )
    op.drop_table("model_artifacts")
