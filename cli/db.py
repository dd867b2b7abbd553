"""`stockcast db ...`: apply and inspect migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli.context import AppContext, pass_app
from forecaster import migrate


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


def _x_arguments(values: tuple[str, ...]) -> dict[str, str]:
    """`-x KEY=VALUE` options, as Alembic's own `-x` (e.g. `-x artifacts=retrain`)."""
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected KEY=VALUE", param_hint="-x")
        pairs[key] = rest
    return pairs


def _migrating(step: Callable[..., None], *args: Any) -> None:
    """A migration that stops on purpose (it says why and what to do, and changed nothing) is a
    one-line error, not a traceback."""
    try:
        step(*args)
    except RuntimeError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc


X_OPTION = click.option(
    "-x",
    "x",
    multiple=True,
    metavar="KEY=VALUE",
    help="An argument for the migrations, e.g. `-x artifacts=retrain` (see docs/operations.md).",
)


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@X_OPTION
@pass_app
def upgrade(app: AppContext, revision: str, x: tuple[str, ...]) -> None:
    """Apply migrations up to REVISION (creates the SQLite file if needed)."""
    _migrating(migrate.upgrade, app.url, revision, _x_arguments(x))
    click.echo(
        f"database at {migrate.current_revision(app.engine)} ({app.engine.url.render_as_string()})"
    )


@db.command()
@click.argument("revision")
@X_OPTION
@pass_app
def downgrade(app: AppContext, revision: str, x: tuple[str, ...]) -> None:
    """Revert migrations down to REVISION (`base` drops everything)."""
    _migrating(migrate.downgrade, app.url, revision, _x_arguments(x))
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
