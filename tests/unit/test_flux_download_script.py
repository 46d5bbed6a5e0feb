"""scripts/download-models: its help and where it would put each model (no network: --help, --dry-run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fleet import REPO

SCRIPT = REPO / "scripts" / "download-models"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_help_names_the_known_models_and_the_token_for_gated_ones() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for repo_id in (
        "black-forest-labs/FLUX.1-schnell",
        "black-forest-labs/FLUX.1-dev",
        "stabilityai/TripoSR",
    ):
        assert repo_id in result.stdout
    assert "HF_TOKEN" in result.stdout and "--token" in result.stdout


def test_repositories_go_to_the_hub_cache_layout_the_services_search(tmp_path: Path) -> None:
    result = run(
        "--dry-run", "--models-dir", str(tmp_path), "flux", "black-forest-labs/FLUX.1-dev", "org/other"
    )
    assert result.returncode == 0, result.stderr
    hub = tmp_path / "hub"
    assert (
        f"black-forest-labs/FLUX.1-schnell → {hub / 'models--black-forest-labs--FLUX.1-schnell'}"
        in result.stdout
    )
    assert f"black-forest-labs/FLUX.1-dev → {hub / 'models--black-forest-labs--FLUX.1-dev'}" in result.stdout
    assert f"org/other → {hub / 'models--org--other'}" in result.stdout
    assert "transformer/*" in result.stdout  # only the diffusers folders, not the single-file checkpoints
    assert not any(tmp_path.iterdir())


def test_local_dir_writes_a_plain_folder_instead(tmp_path: Path) -> None:
    target = tmp_path / "black-forest-labs" / "FLUX.1-schnell"
    result = run("--dry-run", "flux-schnell", "--local-dir", str(target))
    assert result.returncode == 0, result.stderr
    assert f"→ {target}" in result.stdout


def test_an_unknown_short_name_is_refused() -> None:
    result = run("--dry-run", "fluxx")
    assert result.returncode != 0
    assert 'unknown model "fluxx"' in result.stderr
