"""The wheel folder for a GPU machine with Python and torch but no network: build it here, install from it
there (`python -m benchmarks.gpu --wheels DIR` calls ``install``).

    .venv/bin/python scripts/gpu_wheels.py build/gpu-wheels                  # for a machine with torch alone
    .venv/bin/python scripts/gpu_wheels.py build/gpu-wheels --have benchmarks/gpu-image-packages.txt

The folder holds what the project's flux and reconstruction extras need, for Linux x86_64 and the GPU
machine's Python (``--python-version``), except torch and what pip installs with it (the machine's own
torch stays: its CUDA build matches the driver there), and except what the machine already has
(``--have``: its `pip list --format=freeze`, or names one per line; the versions it gives constrain the
choice, so that what is carried works with what is there). It also holds the project's build backend,
for pip's isolated build of the checkout there, and the small pure-Python packages that the carried ones
need from the machine at versions not known here, which pip takes only where the machine's are too old.

pip resolves for the target here (``--dry-run --report``, metadata only) and downloads each chosen wheel
with --no-deps; an earlier build's wheels that are no longer chosen are removed. The total is printed
against the 64 MiB that may travel to the GPU machine with the working tree (``--limit-mib``).

Standard library only at import: ``install`` runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("flux", "reconstruction")
MACHINE_OWN = {"torch"}  # never installed from the folder
PLATFORMS = [
    *(f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)),  # pip matches each N exactly
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


class InstallError(RuntimeError):
    """pip could not install what the benchmarks need from the wheel folder."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def name_of(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return canonical(match[1]) if match else ""


def requirements() -> list[str]:
    """What the extras need at run time, but the machine's own packages."""
    spec = importlib.util.spec_from_file_location(
        "extra_requirements", ROOT / "scripts" / "extra_requirements.py"
    )
    assert spec is not None and spec.loader is not None
    extra_requirements = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extra_requirements)  # a sibling by file path: sys.path stays as it is
    wanted = {
        req for extra in EXTRAS for req in extra_requirements.requirements(extra, ROOT / "pyproject.toml")
    }
    return sorted(req for req in wanted if name_of(req) not in MACHINE_OWN)


def build_requirements() -> list[str]:
    """What pip's isolated build of the project installs (from the folder too, offline)."""
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"])


def constraints_file(pins: list[str]) -> Path:
    with tempfile.NamedTemporaryFile("w", prefix="gpu-wheels-", suffix=".txt", delete=False) as file:
        file.write("\n".join(pins) + "\n")
    return Path(file.name)


# The install side, on the GPU machine.


def site_folders(prefix: Path | None) -> list[str]:
    if prefix is None:
        return []
    paths = sysconfig.get_paths(scheme="posix_prefix", vars={"base": str(prefix), "platbase": str(prefix)})
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def environment(prefix: Path | None) -> dict[str, str]:
    """The environment of processes that import what was installed (into ``prefix``, if one)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if prefix:
        env["PYTHONPATH"] = os.pathsep.join([*site_folders(prefix), *filter(None, [env.get("PYTHONPATH")])])
    return env


def installed_versions(prefix: Path | None) -> dict[str, str]:
    import importlib.metadata

    importlib.invalidate_caches()
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=[*site_folders(prefix), *sys.path]):
        versions.setdefault(canonical(dist.metadata["Name"] or ""), dist.version)
    return versions


def editable_install(prefix: Path | None) -> str | None:
    """Where meshforge is installed in editable mode from, if it is (a development checkout's .venv)."""
    import importlib.metadata

    for dist in importlib.metadata.distributions(name="meshforge", path=[*site_folders(prefix), *sys.path]):
        url = json.loads(dist.read_text("direct_url.json") or "{}")
        if url.get("dir_info", {}).get("editable"):
            return str(url.get("url"))
    return None


def install(wheels: Path, prefix: Path | None) -> dict[str, Any]:
    """What the requirements lack here, from ``wheels`` only: pip keeps every installed package that
    satisfies them, and never touches torch (pinned to the installed one, so a conflict fails instead of
    replacing it). Then the checkout itself, without its dependencies (the torch it pins is not this
    machine's), built in isolation with the folder's setuptools, unless it is installed editable already.
    With ``prefix``, everything goes there instead of the running environment, and
    ``environment(prefix)`` puts it on PYTHONPATH."""
    if not wheels.is_dir():
        raise InstallError(f"{wheels}: no such folder")
    started, before = time.monotonic(), installed_versions(prefix)
    # --isolated: this folder alone, whatever pip's configuration and PIP_* variables name.
    pip = [sys.executable, "-m", "pip", "--isolated", "install", "--no-index", "--find-links", str(wheels)]
    pip += ["--no-input", "--disable-pip-version-check", "--progress-bar", "off"]
    pip += ["--prefix", str(prefix)] if prefix else []
    keep = constraints_file([f"{name}=={before[name]}" for name in sorted(MACHINE_OWN) if name in before])
    wanted, editable = requirements(), editable_install(prefix)
    commands = [[*pip, "--constraint", str(keep), *wanted]]
    if editable is None:  # an editable install is this checkout already, and stays one
        commands.append([*pip, "--no-deps", str(ROOT)])
    try:
        for command in commands:
            done = subprocess.run(command, cwd=ROOT, env=environment(prefix), capture_output=True, text=True)
            print(done.stdout, done.stderr, sep="", end="", file=sys.stderr)
            if done.returncode != 0:
                raise InstallError(f"pip install exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    finally:
        keep.unlink()
    after = installed_versions(prefix)
    return {
        "wheels": str(wheels),
        "into": str(prefix) if prefix else sys.prefix,
        "requirements": wanted,
        "installed": sorted(f"{name}=={v}" for name, v in after.items() if before.get(name) != v),
        "project": f"editable, from {editable}" if editable else "installed from this checkout",
        "seconds": round(time.monotonic() - started, 1),
    }


# The build side, here.


def target_options(python_version: str) -> list[str]:
    options = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    return options + [arg for platform in PLATFORMS for arg in ("--platform", platform)]


def resolve(wanted: list[str], python_version: str, pins: list[str]) -> dict[str, dict[str, Any]]:
    """pip's choice for the target, given the versions ``pins`` holds there: package → its metadata
    (name, version, requires_dist) and the wheel's url."""
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    command += ["--report", "-", *target_options(python_version), *wanted]
    keep = constraints_file(pins)
    try:
        done = subprocess.run([*command, "--constraint", str(keep)], capture_output=True, text=True)
    finally:
        keep.unlink()
    if done.returncode != 0:
        sys.exit(f"gpu_wheels: pip could not resolve {' '.join(wanted)}:\n{done.stderr[-3000:]}")
    chosen = json.loads(done.stdout)["install"]
    return {
        canonical(e["metadata"]["name"]): e["metadata"] | {"url": e["download_info"]["url"]} for e in chosen
    }


def fallbacks(
    carried: dict[str, dict[str, Any]], chosen: dict[str, dict[str, Any]], unknown: set[str]
) -> dict[str, dict[str, Any]]:
    """The pure-Python packages that the carried ones need from the machine, at versions not known here:
    pip installs one only if the machine's is too old for them, instead of failing offline."""
    needed = {
        name_of(requirement)
        for metadata in carried.values()
        for requirement in metadata.get("requires_dist") or []
        if "extra ==" not in requirement
    }
    return {
        name: chosen[name]
        for name in sorted(needed & unknown - MACHINE_OWN)
        if name in chosen and chosen[name]["url"].endswith("-none-any.whl")
    }


def read_have(path: Path | None) -> dict[str, str | None]:
    """Package → version (None where the list gives the name alone), from freeze lines or names."""
    have: dict[str, str | None] = {}
    for line in path.read_text().splitlines() if path else []:
        name, _, version = line.split("#", 1)[0].strip().partition("==")
        if name:
            have[canonical(name.strip())] = version.strip() or None
    return have


def travelling_mib() -> float:
    """What the working tree sends besides the folder: its tracked and untracked, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = [ROOT / name.decode() for name in listed if name]
    return sum(path.stat().st_size for path in files if path.is_file()) / 2**20


def build(folder: Path, python_version: str, have_file: Path | None, limit_mib: float) -> int:
    have = read_have(have_file)
    pins = [f"{name}=={version}" for name, version in have.items() if version]  # what the choice must fit
    chosen = resolve(requirements(), python_version, pins)
    # torch and what pip installs with it (the CUDA libraries, sympy, …) are the machine's, like --have's.
    machines = set(resolve(["torch"], python_version, pins)) | set(have)
    carried = {name: metadata for name, metadata in chosen.items() if name not in machines}
    unknown = {name for name in machines if have.get(name) is None}  # torch's own, --have without versions
    carried |= fallbacks(carried, chosen, unknown)
    carried |= resolve(build_requirements(), python_version, [])  # for the isolated build, whatever is there
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{m['name']}=={m['version']}" for m in carried.values()]
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder)]
    subprocess.run([*download, *target_options(python_version), *pins], check=True)
    total = 0
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        if carried.get(canonical(name), {}).get("version") != version:
            wheel.unlink()  # an earlier build's choice
            continue
        total += wheel.stat().st_size
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}")
    tree = travelling_mib()
    print(f"{total / 2**20:7.2f} MiB in {len(carried)} wheels; the working tree sends {tree:.1f} MiB besides")
    left_out = sorted((machines & set(chosen)) - set(carried))
    print(f"left out (torch's own, --have): {', '.join(left_out) or 'nothing'}")
    if total / 2**20 + tree > limit_mib:
        print(
            f"gpu_wheels: over the {limit_mib:.0f} MiB that may travel: --have the machine's list",
            file=sys.stderr,
        )
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's python3 (default 3.12)")
    parser.add_argument("--have", type=Path, help="the packages the GPU machine has: left out")
    parser.add_argument(
        "--limit-mib", type=float, default=64.0, help="what may travel, working tree included"
    )
    args = parser.parse_args()
    return build(args.folder, args.python_version, args.have, args.limit_mib)


if __name__ == "__main__":
    sys.exit(main())
