"""A prompt or one image → GLB through every real service, reconstruction by InstantMesh on tiny weights.

The tiny models (tests/tiny_zero123plus.py, tests/tiny_instantmesh.py) sit in the fleet's models/ in the
published layouts and are loaded by each reconstruction-service at start-up through the production path.
Zero123++'s six views are noise, but they are drawn, kept in the job's folder, listed in its record and
served; the tiny LRM's SDF is a ball, so the asset's shape is known.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from meshforge.settings import is_settings_variable
from tests.fleet import (
    REPO,
    Fleet,
    download,
    free_port,
    start_fleet,
    start_stack,
    wait_for_end,
    wait_for_state,
)
from tests.meshes import canonical_photos, load, radial_spread, stacked_boxes
from tests.tiny_instantmesh import build_tiny_instantmesh
from tests.tiny_zero123plus import build_finetuned_unet, build_tiny_zero123plus

pytestmark = pytest.mark.fleet

PNG = b"\x89PNG\r\n\x1a\n"
GENERATED = [f"zero123-{k}.png" for k in range(6)]
CANCEL_BOUND_SECONDS = 5.0  # a tiny Zero123++ step takes ~0.3 s on a loaded 2-core machine
SLOW_STEPS = "200"  # about a minute of diffusion: the cancel lands well inside it


@pytest.fixture(scope="module")
def instantmesh_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    data_dir = tmp_path_factory.mktemp("instantmesh-fleet")
    models = data_dir / "models"
    build_tiny_zero123plus(models)
    build_finetuned_unet(models)
    build_tiny_instantmesh(models, ball=True)
    fleet = start_fleet(
        data_dir,
        flux_replicas=1,
        reconstruction_replicas=1,
        extra_env={
            "MESHFORGE_RECONSTRUCTION_BACKEND": "instantmesh",
            "MESHFORGE_INSTANTMESH_DEVICE": "cpu",
            "MESHFORGE_ZERO123PLUS_STEPS": "2",
        },
    )
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def api(instantmesh_fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=instantmesh_fleet.api, timeout=30) as client:
        yield client


def assert_generated_views_listed_and_served(api: httpx.Client, status: dict, data_dir: Path) -> None:
    job_id = status["job_id"]
    generated = [view for view in status["views"] if view["kind"] == "generated"]
    assert [view["name"] for view in generated] == GENERATED
    detail = status["stages"]["reconstructing_3d"]["detail"]
    assert detail["generated_views"] == [f"inputs/jobs/{job_id}/generated/{name}" for name in GENERATED]
    for view in generated:
        assert view["url"] == f"/3d/views/{job_id}/{view['name']}"
        answer = api.get(view["url"])
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert answer.content.startswith(PNG)
        assert (
            answer.content
            == (data_dir / detail["generated_views"][GENERATED.index(view["name"])]).read_bytes()
        )
    assert api.get(f"/3d/views/{job_id}/zero123-7.png").status_code == 404  # only what the record lists


def test_a_prompt_becomes_a_glb_through_one_front_view_and_zero123plus_six(
    api: httpx.Client, instantmesh_fleet: Fleet, tmp_path: Path
) -> None:
    response = api.post("/3d/generate", json={"prompt": "a red cube", "output_format": "glb", "seed": 3})
    assert response.status_code == 200, response.text
    status = wait_for_end(api, response.json()["job_id"], timeout=300)
    assert status["state"] == "completed", status["message"]
    # The replica said it uses one view at Zero123++'s input size: the image stage drew the front alone.
    [front] = status["stages"]["generating_images"]["detail"]["image_paths"]
    with Image.open(instantmesh_fleet.data_dir / front) as drawn:
        assert drawn.size == (320, 320)  # the tiny folder's VAE crop (the published v1.2: 512)
    reconstruction = status["stages"]["reconstructing_3d"]
    assert reconstruction["backend"] == "instantmesh"
    assert reconstruction["detail"]["views"] == ["front"] and reconstruction["detail"]["steps"] == 2
    assert [view["kind"] for view in status["views"]] == ["view"] + ["generated"] * 6
    assert_generated_views_listed_and_served(api, status, instantmesh_fleet.data_dir)
    mesh = load(download(api, status["job_id"], tmp_path))  # download() runs the glTF validator
    assert mesh.is_watertight
    assert radial_spread(mesh) < 0.1  # the tiny LRM's ball, through post-processing


def test_one_uploaded_image_becomes_a_glb_and_lists_its_generated_views(
    api: httpx.Client, instantmesh_fleet: Fleet, tmp_path: Path
) -> None:
    [front] = canonical_photos(stacked_boxes(), 1)
    paths = api.post("/3d/upload", files=[("files", ("front.png", front, "image/png"))]).json()["image_paths"]
    job = api.post("/3d/from-image", json={"image_paths": paths, "output_format": "glb"})
    assert job.status_code == 200, job.text
    status = wait_for_end(api, job.json()["job_id"], timeout=300)
    assert status["state"] == "completed", status["message"]
    assert "note" not in status["stages"]["reconstructing_3d"]["detail"]
    assert [view["kind"] for view in status["views"]] == ["view"] + ["generated"] * 6
    assert_generated_views_listed_and_served(api, status, instantmesh_fleet.data_dir)
    assert load(download(api, status["job_id"], tmp_path)).is_watertight


def test_each_tier_goes_to_the_replicas_of_the_backend_it_prefers_in_a_mixed_pool(
    instantmesh_fleet: Fleet,
) -> None:
    """One InstantMesh and one visual-hull replica in one pool: `high` prefers InstantMesh (its
    default), `standard` is told to prefer the visual hull; each job lands on its backend, and the image
    stage plans its views for that backend alone (one front view; the tier's eight)."""
    port = free_port()
    hull = instantmesh_fleet.start_service(
        "reconstruction-hull",
        "reconstruction_service",
        "MESHFORGE_RECONSTRUCTION_SERVICE_PORT",
        MESHFORGE_RECONSTRUCTION_SERVICE_PORT=str(port),
        MESHFORGE_RECONSTRUCTION_BACKEND="visual_hull",
    )
    replicas = f"{instantmesh_fleet.env['MESHFORGE_RECONSTRUCTION_SERVICE_URLS']},http://127.0.0.1:{port}"
    stack = start_stack(
        instantmesh_fleet,
        "mixed",
        6,
        MESHFORGE_RECONSTRUCTION_SERVICE_URLS=replicas,
        MESHFORGE_TIERS='{"standard": {"reconstruction_backend": "visual_hull"}}',
    )
    try:
        stack.start_dispatcher()
        with httpx.Client(base_url=stack.api, timeout=30) as api:
            ends = {}
            for tier in ("high", "standard", "high", "standard"):
                job = api.post("/3d/generate", json={"prompt": "a red cube", "quality_tier": tier})
                assert job.status_code == 200, job.text
                ends[job.json()["job_id"]] = tier
            for job_id, tier in ends.items():
                status = wait_for_end(api, job_id, timeout=300)
                assert status["state"] == "completed", status["message"]
                reconstruction = status["stages"]["reconstructing_3d"]
                drawn = status["stages"]["generating_images"]["detail"]["image_paths"]
                if tier == "high":
                    assert reconstruction["backend"] == "instantmesh"
                    assert len(drawn) == 1
                else:
                    assert reconstruction["backend"] == "visual_hull"
                    assert len(drawn) == 8
    finally:
        stack.stop()
        hull.stop()


def busy(url: str) -> bool:
    return bool(httpx.get(f"{url}/health", timeout=5).json()["busy"])


def test_cancelling_during_the_diffusion_steps_frees_the_replica_and_keeps_no_view(
    instantmesh_fleet: Fleet,
) -> None:
    """A replica of its own with many Zero123++ steps, driven by a stack of its own (API + dispatcher)."""
    port = free_port()
    slow = instantmesh_fleet.start_service(
        "reconstruction-slow",
        "reconstruction_service",
        "MESHFORGE_RECONSTRUCTION_SERVICE_PORT",
        MESHFORGE_RECONSTRUCTION_SERVICE_PORT=str(port),
        MESHFORGE_ZERO123PLUS_STEPS=SLOW_STEPS,
    )
    replica = f"http://127.0.0.1:{port}"
    stack = start_stack(instantmesh_fleet, "slow", 5, MESHFORGE_RECONSTRUCTION_SERVICE_URLS=replica)
    try:
        stack.start_dispatcher()
        with httpx.Client(base_url=stack.api, timeout=30) as api:
            job_id = api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"]
            wait_for_state(api, job_id, {"reconstructing_3d"}, timeout=120)
            deadline = time.monotonic() + 10
            while not busy(replica):
                assert time.monotonic() < deadline, "the slow replica never took the job"
                time.sleep(0.02)
            time.sleep(1.5)  # well into the diffusion steps (the models are loaded at start-up)
            assert busy(replica), "the diffusion ended before the test could cancel it: raise SLOW_STEPS"
            assert api.post(f"/3d/cancel/{job_id}").status_code == 200
            started = time.monotonic()
            while busy(replica):
                assert time.monotonic() - started < 30, "the replica stayed busy"
                time.sleep(0.02)
            seconds = time.monotonic() - started
            print(f"instantmesh replica free {seconds:.3f} s after the cancel")
            assert seconds < CANCEL_BOUND_SECONDS, f"stayed busy {seconds:.2f} s after the cancel"
            status = wait_for_end(api, job_id, timeout=30)
            assert status["state"] == "cancelled"
            assert [view["kind"] for view in status["views"]] == ["view"]
        generated = instantmesh_fleet.data_dir / "inputs" / "jobs" / job_id / "generated"
        assert not list(generated.glob("zero123-*.png")), "the views are written only once diffusion ends"
        assert f"job {job_id}: cancelling its running work" in slow.tail(200)
    finally:
        stack.stop()
        slow.stop()


def test_without_its_models_the_backend_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    env |= {
        "MESHFORGE_RECONSTRUCTION_BACKEND": "instantmesh",
        "MESHFORGE_RECONSTRUCTION_SERVICE_PORT": str(free_port()),
        "MESHFORGE_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "reconstruction_service"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    [start] = [line for line in output.splitlines() if "cannot start" in line]
    assert "reconstruction-service cannot start: model TencentARC/InstantMesh not found" in start
    assert "scripts/download-models TencentARC/InstantMesh" in output
    assert "scripts/download-models sudo-ai/zero123plus-v1.2" in output
    assert str(tmp_path / "models") in output
