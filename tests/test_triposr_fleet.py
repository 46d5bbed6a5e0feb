"""Uploaded views → GLB through every real service, with reconstruction by TripoSR on tiny weights.

The tiny model (tests/tiny_triposr.py) sits in models/ in the published layout and is loaded by each
reconstruction-service at start-up through the production path; its density field is a ball, so the
asset's shape is known even though most weights are random.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("torch")

from tests.fleet import Fleet, download, start_fleet, wait_for_end
from tests.meshes import canonical_photos, load, radial_spread, stacked_boxes
from tests.tiny_triposr import build_tiny_triposr

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def triposr_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("triposr-fleet")
    build_tiny_triposr(data_dir / "models")
    fleet: Fleet = start_fleet(
        data_dir,
        flux_replicas=1,
        reconstruction_replicas=1,
        extra_env={
            "MESHFORGE_RECONSTRUCTION_BACKEND": "triposr",
            "MESHFORGE_TRIPOSR_DEVICE": "cpu",
            "MESHFORGE_TRIPOSR_MC_RESOLUTION": "48",
        },
    )
    try:
        with httpx.Client(base_url=fleet.api, timeout=30) as client:
            yield client
    finally:
        fleet.stop()


def test_uploaded_views_become_a_valid_glb_reconstructed_by_triposr_from_the_front_view(
    triposr_api: httpx.Client, tmp_path: Path
) -> None:
    files = [
        ("files", (f"v{i}.png", png, "image/png"))
        for i, png in enumerate(canonical_photos(stacked_boxes(), 4))
    ]
    uploaded = triposr_api.post("/3d/upload", files=files)
    assert uploaded.status_code == 201, uploaded.text
    job = triposr_api.post(
        "/3d/from-image", json={"image_paths": uploaded.json()["image_paths"], "output_format": "glb"}
    )
    assert job.status_code == 200, job.text
    status = wait_for_end(triposr_api, job.json()["job_id"], timeout=120)
    assert status["state"] == "completed", status["message"]
    detail = status["stages"]["reconstructing_3d"]["detail"]
    assert detail["used_view"] == "front"
    assert "used the front view" in detail["note"]
    mesh = load(download(triposr_api, status["job_id"], tmp_path))  # download checks the glTF validator
    assert mesh.is_watertight
    assert radial_spread(mesh) < 0.1  # the tiny model's ball, through post-processing


def test_a_single_upload_is_reconstructed_without_a_note(triposr_api: httpx.Client, tmp_path: Path) -> None:
    [front] = canonical_photos(stacked_boxes(), 1)
    paths = triposr_api.post("/3d/upload", files=[("files", ("f.png", front, "image/png"))]).json()[
        "image_paths"
    ]
    status = wait_for_end(
        triposr_api,
        triposr_api.post("/3d/from-image", json={"image_paths": paths}).json()["job_id"],
        timeout=120,
    )
    assert status["state"] == "completed", status["message"]
    assert status["stages"]["reconstructing_3d"]["detail"]["used_view"] == "front"
    assert "note" not in status["stages"]["reconstructing_3d"]["detail"]
    assert load(download(triposr_api, status["job_id"], tmp_path)).is_watertight
