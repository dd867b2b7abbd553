"""`stockcast db ...`: apply and inspect migrations."""

from __future__ import annotations

import click

from cli.context import AppContext, pass_app
from forecaster import migrate


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_app
def upgrade(app: AppContext, revision: str) -> None:
    """Apply migrations up to REVISION (creates the SQLite file if needed)."""
    migrate.upgrade(app.url, revision)
    click.echo(
        f"database at {migrate.current_revision(app.engine)} ({app.engine.url.render_as_string()})"
    )


@db.command()
@click.argument("revision")
@pass_app
def downgrade(app: AppContext, revision: str) -> None:
    """Revert migrations down to REVISION (`base` drops everything)."""
    migrate.downgrade(app.url, revision)
    click.echo(f"database at {migrate.current_revision(app.engine) or 'base'}")


@db.command()
@pass_app
def current(app: AppContext) -> None:
    """Show the applied and the latest revision."""
    now = migrate.current_revision(app.engine)
    head = migrate.head_revision(app.url)
    click.echo(
        f"current: {now or 'base'}  head: {head}  {'(up to date)' if now == head else '(run `stockcast db upgrade`)'}"
    )


COMMANDS = [db]
