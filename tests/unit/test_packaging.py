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


def test_the_type_checker_checks_every_package() -> None:
    """mypy checks each service through build/typecheck/<package>, which `make typecheck` links to the
    folder of the same name with hyphens (flux_service → flux-service)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_dir = pyproject["tool"]["setuptools"]["package-dir"]
    assert all(folder == package.replace("_", "-") for package, folder in package_dir.items())
    services = {f"build/typecheck/{package}" for package in package_dir}
    assert {"meshforge", "orchestrator", *services} <= set(pyproject["tool"]["mypy"]["files"])
