"""The pages' templates and static files ship in the wheel: every file under api/pages/templates
and api/pages/static matches a package-data pattern in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_page_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api.pages"]
    package = ROOT / "api" / "pages"
    files = [
        p.relative_to(package).as_posix()
        for folder in ("templates", "static")
        for p in (package / folder).rglob("*")
        if p.is_file()
    ]
    assert "static/vendor/uplot/uPlot.iife.min.js" in files
    assert "static/vendor/uplot/LICENSE" in files
    # setuptools expands the patterns with glob: the same expansion here
    shipped = {
        p.relative_to(package).as_posix() for pattern in patterns for p in package.glob(pattern)
    }
    assert sorted(set(files) - shipped) == []
