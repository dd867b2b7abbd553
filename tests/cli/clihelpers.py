"""Running the admin CLI in-process for the CLI tests."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import cli


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `stockcast ARGS...`."""
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr
