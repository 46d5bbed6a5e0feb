"""pyproject.toml lists every Python package, so wheels and Docker images carry all of them."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folder_of = {package: folder for package, folder in setuptools["package-dir"].items()}
    roots = ["meshforge", "orchestrator", *folder_of.values()]
    package_of_folder = {folder: package for package, folder in folder_of.items()}
    found = set()
    for root in roots:
        for init in (REPO / root).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO).parts
            found.add(".".join([package_of_folder.get(parts[0], parts[0]), *parts[1:]]))
    assert found == set(setuptools["packages"])
