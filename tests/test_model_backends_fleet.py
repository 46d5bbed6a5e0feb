"""The production model path through the whole fleet, on CPU: every stage on its model backend.

flux-service runs ``diffusers`` on a tiny random FLUX.1 pipeline, image-service mats with the ``onnx``
backend on a tiny segmentation model, reconstruction-service runs ``triposr`` on tiny weights; all three
are loaded from models/ by their production loaders. Random FLUX weights draw noise; the tiny matting
model's centre prior turns each view into one round object, and the tiny TripoSR's density is a ball, so
every stage gets real input and the job ends in a valid GLB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fleet import Fleet, download, start_fleet, wait_for_end
from tests.meshes import load
from tests.tiny_flux import build_tiny_flux
from tests.tiny_matting import build_tiny_matting_model
from tests.tiny_triposr import build_tiny_triposr

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def model_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    data_dir = tmp_path_factory.mktemp("model-fleet")
    build_tiny_flux(data_dir / "models")
    build_tiny_matting_model(data_dir / "models" / "matting" / "u2net.onnx", centre_prior=True)
    build_tiny_triposr(data_dir / "models")
    running = start_fleet(
        data_dir,
        flux_replicas=1,
        reconstruction_replicas=1,
        extra_env={
            "MESHFORGE_FLUX_BACKEND": "diffusers",
            "MESHFORGE_FLUX_DEVICE": "cpu",
            "MESHFORGE_MATTING_BACKEND": "onnx",
            "MESHFORGE_RECONSTRUCTION_BACKEND": "triposr",
            "MESHFORGE_TRIPOSR_DEVICE": "cpu",
            "MESHFORGE_TRIPOSR_MC_RESOLUTION": "64",
        },
    )
    yield running
    running.stop()


@pytest.fixture
def model_api(model_fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=model_fleet.api, timeout=30) as client:
        yield client


def test_prompt_to_glb_through_flux_onnx_matting_and_triposr(model_api: httpx.Client, tmp_path: Path) -> None:
    response = model_api.post(
        "/3d/generate", json={"prompt": "a red cube", "output_format": "glb", "seed": 7}
    )
    assert response.status_code == 200, response.text
    status = wait_for_end(model_api, response.json()["job_id"], timeout=300)
    assert status["state"] == "completed", status["message"]
    images = status["stages"]["generating_images"]
    assert images["backend"] == "flux-service:diffusers"
    assert images["detail"]["matting"].startswith("onnx")
    # TripoSR uses one image: the image stage drew only the front view, with a plain view prompt, not a
    # turnaround sheet of eight cells it would mostly ignore.
    assert images["detail"]["consistency"] == "single view"
    assert images["detail"]["generations"] == 1
    reconstruction = status["stages"]["reconstructing_3d"]
    assert reconstruction["backend"].startswith("triposr")
    assert reconstruction["detail"]["views"] == ["front"] and "note" not in reconstruction["detail"]
    mesh = load(download(model_api, status["job_id"], tmp_path))  # download() runs the glTF validator
    assert len(mesh.faces) > 100
    assert mesh.extents.max() / mesh.extents.min() < 1.2  # the tiny TripoSR's density ball
