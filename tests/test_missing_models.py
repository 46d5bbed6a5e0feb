"""A model backend without its weights refuses to start with one log line that says where it looked and
how to download them (exit code 3, no traceback), instead of reaching for a hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshforge.settings import is_settings_variable
from tests.fleet import REPO, free_port

CASES = {
    "flux_service": (
        {"MESHFORGE_FLUX_BACKEND": "diffusers", "MESHFORGE_FLUX_SERVICE_PORT": ""},
        "flux-service cannot start: model black-forest-labs/FLUX.1-schnell not found",
        "scripts/download-models black-forest-labs/FLUX.1-schnell",
    ),
    "reconstruction_service": (
        {"MESHFORGE_RECONSTRUCTION_BACKEND": "triposr", "MESHFORGE_RECONSTRUCTION_SERVICE_PORT": ""},
        "reconstruction-service cannot start: model stabilityai/TripoSR not found",
        "scripts/download-models stabilityai/TripoSR",
    ),
    "image_service": (
        {"MESHFORGE_MATTING_BACKEND": "onnx", "MESHFORGE_IMAGE_SERVICE_PORT": ""},
        "image-service cannot start:",
        "scripts/download-models matting",
    ),
}


@pytest.mark.parametrize("module", sorted(CASES))
def test_a_backend_without_weights_refuses_to_start_and_says_how_to_get_them(
    module: str, tmp_path: Path
) -> None:
    settings, sentence, remedy = CASES[module]
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    env.update({name: value or str(free_port()) for name, value in settings.items()})
    env["MESHFORGE_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", module], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3
    assert sentence in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert remedy in output
    assert str(tmp_path / "models") in output  # where it looked
    assert [line for line in output.splitlines() if "cannot start" in line] == [
        next(line for line in output.splitlines() if sentence in line)
    ]
