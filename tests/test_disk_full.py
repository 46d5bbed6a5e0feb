"""A full disk, for real: the fleet's outputs/ and inputs/ are small tmpfs mounts that fill up.

A job whose asset does not fit ends ``failed`` with a message that says the server is out of space, no
half-written file is left under a job's name, the API and every service keep answering, and once space
is freed the next job completes with no restart. An upload onto a full inputs/ answers 507, not 500.

Mounting needs CAP_SYS_ADMIN (root here and in CI); without it the module is skipped, saying so.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.fleet import Fleet, download, start_fleet, wait_for_end

pytestmark = pytest.mark.fleet

FULL = "size=64k"  # far below a standard-tier asset (a 1024² texture): post-processing cannot write it
ROOMY = "size=256m"


def mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


def resize(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def can_mount(probe: Path) -> bool:
    if os.geteuid() != 0:
        return False
    try:
        mount_tmpfs(probe, FULL)
    except (OSError, subprocess.CalledProcessError):
        return False
    subprocess.run(["umount", str(probe)], check=False)
    return True


@pytest.fixture(scope="module")
def small_disk_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    data_dir = tmp_path_factory.mktemp("disk-full")
    if not can_mount(data_dir / "probe"):
        pytest.skip("mounting a tmpfs needs CAP_SYS_ADMIN (run as root): the full-disk fleet test is skipped")
    mounted = [data_dir / "outputs", data_dir / "inputs"]
    mount_tmpfs(mounted[0], FULL)
    mount_tmpfs(mounted[1], ROOMY)
    try:
        fleet = start_fleet(data_dir, flux_replicas=1, reconstruction_replicas=1)
        try:
            yield fleet
        finally:
            fleet.stop()
    finally:
        for folder in mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def api(small_disk_fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small_disk_fleet.api, timeout=30) as client:
        yield client


def job_files(outputs: Path, job_id: str) -> list[str]:
    return sorted(path.name for path in outputs.iterdir() if path.name.startswith(job_id))


def test_a_job_whose_asset_does_not_fit_fails_plainly_and_the_next_one_completes_once_space_is_freed(
    api: httpx.Client, small_disk_fleet: Fleet, tmp_path: Path
) -> None:
    outputs = small_disk_fleet.data_dir / "outputs"
    job_id = api.post("/3d/generate", json={"prompt": "a red cube", "seed": 1}).json()["job_id"]
    status = wait_for_end(api, job_id, timeout=180)
    assert status["state"] == "failed"
    assert status["message"].startswith("post-processing failed: no space left on the server"), status
    assert "try again later" in status["message"]
    assert str(small_disk_fleet.data_dir) not in status["message"]  # no server path in a public message
    assert job_files(outputs, job_id) == [], "a half-written file was left under the job's name"
    assert not [p.name for p in outputs.iterdir() if p.name.startswith(".")], "a temporary file was left"
    assert api.get("/health").json()["status"] == "ok"

    resize(outputs, ROOMY)  # the operator frees space: no restart of anything
    retry = api.post("/3d/generate", json={"prompt": "a red cube", "seed": 1}).json()["job_id"]
    again = wait_for_end(api, retry, timeout=180)
    assert again["state"] == "completed", again["message"]
    assert download(api, retry, tmp_path).stat().st_size > 64 * 1024


def test_an_upload_onto_a_full_disk_answers_507_and_keeps_nothing(
    api: httpx.Client, small_disk_fleet: Fleet
) -> None:
    inputs = small_disk_fleet.data_dir / "inputs"
    noise = Image.effect_noise((512, 512), 80).convert("RGB")  # incompressible: ~0.8 MB as PNG
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    uploads_before = sorted((inputs / "uploads").glob("*")) if (inputs / "uploads").exists() else []
    resize(inputs, "size=256k")
    try:
        response = api.post("/3d/upload", files=[("files", ("big.png", buffer.getvalue(), "image/png"))])
    finally:
        resize(inputs, ROOMY)
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["code"] == "storage_full"
    assert body["detail"].startswith("no space left on the server"), body
    assert str(small_disk_fleet.data_dir) not in body["detail"]
    uploads_after = sorted((inputs / "uploads").glob("*")) if (inputs / "uploads").exists() else []
    assert uploads_after == uploads_before, "a partial upload was kept"
    assert api.get("/health").json()["status"] == "ok"
