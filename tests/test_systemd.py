"""The boot unit scripts/scratch-3d.service, checked by systemd's own parser (systemd-analyze verify)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "scripts" / "scratch-3d.service"
DOCKER = "/usr/bin/docker"

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


def render(folder: Path, text: str | None = None) -> Path:
    """A copy of the unit that systemd-analyze can verify on this machine, named as installed.

    WorkingDirectory points at an existing folder (the committed /opt/meshforge is a placeholder that
    scripts/install-host replaces). verify also checks that every Exec binary exists: where Docker is
    not installed at /usr/bin/docker (CI), the copy names an executable stub instead. Only that path
    changes; every other line is verified as committed.
    """
    text = UNIT.read_text() if text is None else text
    project = folder / "project"
    project.mkdir(exist_ok=True)
    text = text.replace("WorkingDirectory=/opt/meshforge", f"WorkingDirectory={project}")
    if not Path(DOCKER).is_file():
        stub = folder / "docker"
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        text = text.replace(f"={DOCKER} ", f"={stub} ")
    unit = folder / "units" / UNIT.name
    unit.parent.mkdir(exist_ok=True)
    unit.write_text(text)
    return unit


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert analyze is not None
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=unit.parent
    )


def about_unit(stderr: str) -> list[str]:
    """verify also loads the units ours depends on (docker.service...): keep only what concerns ours."""
    return [line for line in stderr.splitlines() if UNIT.name in line]


@needs_analyze
def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    result = verify(render(tmp_path))
    assert result.returncode == 0, result.stderr
    assert about_unit(result.stderr) == [], result.stderr


@needs_analyze
def test_verify_would_catch_a_restart_policy_on_a_oneshot(tmp_path: Path) -> None:
    # Proves the check above has teeth: systemd refuses Restart=always on a oneshot unit.
    text = UNIT.read_text().replace("RemainAfterExit=yes\n", "RemainAfterExit=yes\nRestart=always\n")
    result = verify(render(tmp_path, text))
    assert result.returncode != 0
    assert "Restart=" in result.stderr


def test_unit_settings() -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    unit, service, install = parser["Unit"], parser["Service"], parser["Install"]
    assert set(unit["After"].split()) == {"docker.service", "network-online.target"}
    assert unit["Requires"] == "docker.service"
    assert unit["Wants"] == "network-online.target"
    assert service["Type"] == "oneshot"
    assert service["RemainAfterExit"] == "yes"
    # No process remains to restart; Docker's restart policies look after the containers.
    assert "Restart" not in service
    assert service["WorkingDirectory"] == "/opt/meshforge"
    assert service["ExecStart"] == f"{DOCKER} compose up -d --remove-orphans"
    assert service["ExecStop"] == f"{DOCKER} compose down"
    assert service["ExecReload"] == f"{DOCKER} compose up -d"
    assert int(service["TimeoutStartSec"]) >= 600
    assert install["WantedBy"] == "multi-user.target"
