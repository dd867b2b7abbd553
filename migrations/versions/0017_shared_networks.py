"""shared networks: a network several versions serve through is stored once

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04

In universe scope every ticker's version serves the same ensemble of networks plus its own linear
highway. Each artifact used to carry a copy of the ensemble (about 200 KB with 3 members); now the
ensemble is a row of `shared_networks`, addressed by its digest, and each artifact refers to it
and keeps only its own part (the highway, in its meta document, format 2). Artifacts written
before keep their own network and load as they did.

Downgrade: an older release cannot load a format 2 artifact. It stops if any exists, unless
`alembic -x artifacts=retrain downgrade 0016`, which deletes them (their versions keep their
figures; the next night trains those tickers again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    op.create_table(
        "shared_networks",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("network", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_shared_networks"),
    )
    # A batch copy of `model_artifacts` (SQLite cannot change a column's nullability in place);
    # no table references it.
    with op.batch_alter_table("model_artifacts") as batch:
        batch.add_column(sa.Column("shared_sha256", sa.String(length=64), nullable=True))
        batch.alter_column("network", existing_type=sa.LargeBinary(), nullable=True)
        batch.create_foreign_key(
            "fk_model_artifacts_shared_sha256_shared_networks",
            "shared_networks",
            ["shared_sha256"],
            ["sha256"],
        )
        batch.create_check_constraint(
            op.f("ck_model_artifacts_own_or_shared_network"),
            "(network IS NULL) <> (shared_sha256 IS NULL)",
        )
        batch.create_index("ix_model_artifacts_shared_sha256", ["shared_sha256"])


def downgrade() -> None:
    bind = op.get_bind()
    shared = bind.execute(
        sa.text("SELECT count(*) FROM model_artifacts WHERE shared_sha256 IS NOT NULL")
    ).scalar_one()
    if shared and context.get_x_argument(as_dictionary=True).get("artifacts") != "retrain":
        raise RuntimeError(
            f"downgrade to 0016 stopped, nothing changed: {shared} model artifact(s) use a shared "
            "network, which an older release cannot load; accept retraining those tickers: "
            "`alembic -x artifacts=retrain downgrade 0016`"
        )
    if shared:
        op.execute("DELETE FROM model_artifacts WHERE shared_sha256 IS NOT NULL")
        log.info("model artifacts using a shared network deleted: %d", shared)
    with op.batch_alter_table("model_artifacts") as batch:
        batch.drop_index("ix_model_artifacts_shared_sha256")
        batch.drop_constraint(op.f("ck_model_artifacts_own_or_shared_network"), type_="check")
        batch.drop_constraint(
            "fk_model_artifacts_shared_sha256_shared_networks", type_="foreignkey"
        )
        batch.alter_column("network", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("shared_sha256")
    op.drop_table("shared_networks")
