"""The boot unit scripts/scratch-3d.service, checked by systemd's own parser (systemd-analyze verify)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "scripts" / "scratch-3d.service"
INSTALL = REPO / "scripts" / "install-host"
DOCKER = "/usr/bin/docker"
COMPOSE_ENV = "/etc/meshforge/compose.env"
DOCKER_COMPOSE = shutil.which("docker-compose")

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


def unit_sections(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(text)
    return parser


def test_unit_settings() -> None:
    parser = unit_sections(UNIT.read_text())
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


def test_the_compose_files_come_from_compose_file() -> None:
    service = unit_sections(UNIT.read_text())["Service"]
    # The committed layout unless the environment file install-host --compose writes says otherwise
    # (its settings override Environment=); "-": the unit starts without the file.
    assert service["Environment"] == "COMPOSE_FILE=docker-compose.yml"
    assert service["EnvironmentFile"] == f"-{COMPOSE_ENV}"
    # No -f on up, down or reload, so each of them reads COMPOSE_FILE: the same files for all three.
    for key in ("ExecStart", "ExecStop", "ExecReload"):
        assert not {"-f", "--file"} & set(service[key].split()), service[key]


def install(root: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALL), "--prefix", str(root), "--no-systemctl", "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as systemd reads EnvironmentFile= (comments are skipped)."""
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_install_host_writes_the_default_compose_file(tmp_path: Path) -> None:
    done = install(tmp_path / "root", REPO)
    assert done.returncode == 0, done.stderr
    assert environment_file(tmp_path / "root" / COMPOSE_ENV.lstrip("/")) == {
        "COMPOSE_FILE": "docker-compose.yml"
    }


def test_install_host_refuses_a_missing_compose_file(tmp_path: Path) -> None:
    done = install(tmp_path / "root", REPO, "--compose", "docker-compose.cpu.yml", "docker-compose.typo.yml")
    assert done.returncode == 2
    assert "no such file" in done.stderr and "docker-compose.typo.yml" in done.stderr
    assert not (tmp_path / "root" / "etc").exists()


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed")
def test_install_host_compose_sets_the_layout_the_unit_runs(tmp_path: Path) -> None:
    # A layout of one's own (as generate_compose.py --output writes one), plus an override file.
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.2gpu.yml").write_text(
        'services:\n  flux-0:\n    image: "flux"\n  reconstruction-0:\n    image: "reconstruction"\n'
        '  ui:\n    image: "ui"\n'
    )
    (project / "override.yml").write_text('services:\n  ui:\n    labels:\n      layout: "mine"\n')
    root = tmp_path / "root"
    done = install(root, project, "--compose", "docker-compose.2gpu.yml", "override.yml")
    assert done.returncode == 0, done.stderr
    variables = environment_file(root / COMPOSE_ENV.lstrip("/"))
    assert variables == {"COMPOSE_FILE": "docker-compose.2gpu.yml:override.yml"}

    # What the unit's `docker compose ...` (no -f) sees in its WorkingDirectory with that environment:
    # both files, merged. docker-compose 1.29 reads COMPOSE_FILE as the compose plugin does.
    assert DOCKER_COMPOSE is not None
    config = subprocess.run(
        [DOCKER_COMPOSE, "config"],
        capture_output=True,
        text=True,
        cwd=project,
        env={**os.environ, **variables},
        timeout=60,
    )
    assert config.returncode == 0, config.stderr
    services = yaml.safe_load(config.stdout)["services"]
    assert set(services) == {"flux-0", "reconstruction-0", "ui"}
    assert services["ui"]["labels"] == {"layout": "mine"}

    # Re-running install-host without --compose keeps the layout; --compose changes it.
    assert install(root, project).returncode == 0
    assert environment_file(root / COMPOSE_ENV.lstrip("/")) == variables
    assert install(root, project, "--compose", "docker-compose.2gpu.yml").returncode == 0
    assert environment_file(root / COMPOSE_ENV.lstrip("/")) == {"COMPOSE_FILE": "docker-compose.2gpu.yml"}
