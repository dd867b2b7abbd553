"""Apply and inspect the Alembic migrations from code (CLI `db upgrade`, readiness checks, tests)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from forecaster.storage import ensure_sqlite_dir


def alembic_config(url: str, x: dict[str, str] | None = None) -> Config:
    """`x`: the migrations' `-x` arguments (e.g. {"artifacts": "retrain"})."""
    import argparse

    import migrations

    config = Config(cmd_opts=argparse.Namespace(x=[f"{k}={v}" for k, v in (x or {}).items()]))
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # ConfigParser interpolation: a literal % in a URL (encoded password) must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", x: dict[str, str] | None = None) -> None:
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url, x), revision)


def downgrade(url: str, revision: str, x: dict[str, str] | None = None) -> None:
    command.downgrade(alembic_config(url, x), revision)


@cache
def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def head_revision(url: str | None = None) -> str | None:
    """The newest revision shipped with this code (the same for every database)."""
    return _head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_at_head(engine: Engine) -> bool:
    return current_revision(engine) == head_revision(
        engine.url.render_as_string(hide_password=False)
    )
