"""A finished job downloaded in another format (`GET /3d/download/{id}?format=…`), through every real
service process: converted from the job's master GLB by postprocess-service on the first download, kept
and served again after; 409 without a master, 422 for a format that does not exist; the master and every
conversion go with the job (cancellation, retention)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import trimesh
from PIL import Image
from pxr import Usd, UsdGeom
from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.settings import DispatcherSettings
from orchestrator.retention import Sweeper
from postprocess_service.blender import inspect_fbx
from tests.fleet import (
    REPO,
    Fleet,
    Stack,
    download,
    free_port,
    running_stack,
    wait_for_end,
    wait_for_state,
)
from tests.gltf_validator import assert_valid_glb

pytestmark = pytest.mark.fleet

BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
EVERY_FORMAT = ["glb", "obj", "fbx", "stl", "usdz"]
STACK_DB = 10
DAY = 86400.0
# The stack's "high" tier bakes a 4096² texture: post-processing long enough to cancel it mid-way.
SLOW_POSTPROCESSING = {"high": {"views": 4, "image_size": 128, "voxel_resolution": 64, "texture_size": 4096}}


def generate(api: httpx.Client, **body: object) -> dict:
    response = api.post("/3d/generate", json=body)
    assert response.status_code == 200, response.text
    status = wait_for_end(api, response.json()["job_id"])
    assert status["state"] == "completed", status["message"]
    return status


@pytest.fixture(scope="module")
def glb_job(api_module: httpx.Client) -> dict:
    return generate(api_module, prompt="a red cube", output_format="glb", seed=3)


@pytest.fixture(scope="module")
def api_module(fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fleet.api, timeout=120) as client:
        yield client


def download_as(api: httpx.Client, job_id: str, output_format: str, folder: Path) -> Path:
    """``?format=`` download, saved under the name the server gives (checked: ``<id><suffix>``)."""
    response = api.get(f"/3d/download/{job_id}", params={"format": output_format})
    assert response.status_code == 200, response.text
    name = response.headers["content-disposition"].split("filename=")[-1].strip('"')
    suffix = ".obj.zip" if output_format == "obj" else f".{output_format}"
    assert name == f"{job_id}{suffix}"
    path = folder / name
    path.write_bytes(response.content)
    if path.suffix == ".glb":
        assert_valid_glb(path)
    return path


def faces_of(status: dict) -> int:
    return int(status["stages"]["post_processing"]["detail"]["faces"])


def conversions_done(fleet: Fleet) -> int:
    """How many conversions postprocess-service has answered, from its Prometheus counter."""
    port = fleet.env["MESHFORGE_POSTPROCESS_SERVICE_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    pattern = (
        r'meshforge_http_requests_total\{[^}]*route="/postprocess/convert"[^}]*status="200"[^}]*\} (\S+)'
    )
    return int(sum(float(value) for value in re.findall(pattern, text)))


def red_share(image: Image.Image) -> float:
    pixels = np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3)
    red = (pixels[:, 0] > 120) & (pixels[:, 0] > 2 * pixels[:, 1]) & (pixels[:, 0] > 2 * pixels[:, 2])
    return float(red.mean())


# --- the status -----------------------------------------------------------------------------------------


def test_a_completed_job_lists_every_format_and_a_running_one_none(
    api_module: httpx.Client, glb_job: dict
) -> None:
    assert glb_job["formats"] == EVERY_FORMAT
    submitted = api_module.post("/3d/generate", json={"prompt": "a blue sphere"}).json()["job_id"]
    assert api_module.get(f"/3d/status/{submitted}").json()["formats"] == []
    assert wait_for_end(api_module, submitted)["formats"] == EVERY_FORMAT


# --- a GLB job in every other format -------------------------------------------------------------------


def test_a_glb_job_downloads_as_an_obj_zip_with_its_red_texture(
    api_module: httpx.Client, glb_job: dict, tmp_path: Path
) -> None:
    archive = download_as(api_module, glb_job["job_id"], "obj", tmp_path)
    with zipfile.ZipFile(archive) as bundle:
        names = sorted(bundle.namelist())
        bundle.extractall(tmp_path / "unzipped")
    stem = glb_job["job_id"]
    assert names == [f"{stem}.mtl", f"{stem}.obj", f"{stem}.png"]
    mesh = trimesh.load(tmp_path / "unzipped" / f"{stem}.obj", force="mesh")
    assert len(mesh.faces) == faces_of(glb_job)
    assert mesh.visual.kind == "texture"
    assert red_share(Image.open(tmp_path / "unzipped" / f"{stem}.png")) > 0.5


def test_a_glb_job_downloads_as_a_binary_stl_of_the_same_triangles(
    api_module: httpx.Client, glb_job: dict, tmp_path: Path
) -> None:
    path = download_as(api_module, glb_job["job_id"], "stl", tmp_path)
    data = path.read_bytes()
    triangles = int.from_bytes(data[80:84], "little")
    assert triangles == faces_of(glb_job) and len(data) == 84 + 50 * triangles
    mesh = trimesh.load(path, force="mesh")
    own = trimesh.load(download(api_module, glb_job["job_id"], tmp_path), force="mesh")
    assert np.allclose(mesh.bounds, own.bounds, atol=1e-5)  # placed as the GLB is


def test_a_glb_job_downloads_as_an_fbx_blender_reads_with_its_texture(
    api_module: httpx.Client, glb_job: dict, tmp_path: Path
) -> None:
    fbx = download_as(api_module, glb_job["job_id"], "fbx", tmp_path)
    assert fbx.read_bytes()[:18] == b"Kaydara FBX Binary"
    summary = inspect_fbx(fbx, blender_python=BLENDER_PYTHON, timeout=120)
    assert summary["faces"] == faces_of(glb_job)
    assert summary["images_with_data"] >= 1


def test_a_glb_job_downloads_as_a_usdz_package(
    api_module: httpx.Client, glb_job: dict, tmp_path: Path
) -> None:
    response = api_module.get(f"/3d/download/{glb_job['job_id']}", params={"format": "usdz"})
    assert response.headers["content-type"] == "model/vnd.usdz+zip"
    package = download_as(api_module, glb_job["job_id"], "usdz", tmp_path)
    with zipfile.ZipFile(package) as bundle:
        first, *rest = bundle.infolist()
        assert Path(first.filename).suffix in {".usda", ".usdc"}
        assert [Path(info.filename).suffix for info in rest] == [".png"]
        assert red_share(Image.open(io.BytesIO(bundle.read(rest[0].filename)))) > 0.5
    stage = Usd.Stage.Open(str(package))
    (mesh,) = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert len(mesh.GetFaceVertexCountsAttr().Get()) == faces_of(glb_job)


def test_the_own_format_and_no_format_are_the_asset_itself(
    api_module: httpx.Client, glb_job: dict, tmp_path: Path
) -> None:
    job_id = glb_job["job_id"]
    plain = api_module.get(f"/3d/download/{job_id}")
    own = api_module.get(f"/3d/download/{job_id}", params={"format": "glb"})
    assert plain.status_code == own.status_code == 200
    assert plain.content == own.content
    assert plain.headers["content-disposition"] == own.headers["content-disposition"]
    assert plain.headers["content-type"] == "model/gltf-binary"


# --- caching and concurrency ----------------------------------------------------------------------------


def test_a_second_download_serves_the_kept_file_without_converting_again(
    api_module: httpx.Client, fleet: Fleet
) -> None:
    job_id = generate(api_module, prompt="a yellow cone", output_format="glb")["job_id"]
    before = conversions_done(fleet)
    first = api_module.get(f"/3d/download/{job_id}", params={"format": "stl"})
    assert first.status_code == 200, first.text
    kept = fleet.data_dir / "outputs" / f"{job_id}.stl"
    assert kept.is_file() and conversions_done(fleet) == before + 1
    written = kept.stat().st_mtime_ns
    second = api_module.get(f"/3d/download/{job_id}", params={"format": "stl"})
    assert second.content == first.content
    assert conversions_done(fleet) == before + 1 and kept.stat().st_mtime_ns == written


def test_concurrent_downloads_of_one_conversion_convert_once(api_module: httpx.Client, fleet: Fleet) -> None:
    job_id = generate(api_module, prompt="a green cylinder", output_format="glb")["job_id"]
    before = conversions_done(fleet)
    answers: list[httpx.Response] = []
    start = threading.Barrier(4)

    def fetch() -> None:
        with httpx.Client(base_url=fleet.api, timeout=120) as client:
            start.wait()
            answers.append(client.get(f"/3d/download/{job_id}", params={"format": "fbx"}))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [200] * 4
    assert len({answer.content for answer in answers}) == 1
    assert conversions_done(fleet) == before + 1


# --- a non-GLB job: its master ----------------------------------------------------------------------------


def test_an_fbx_job_downloads_as_glb_from_its_master_with_the_same_faces(
    api_module: httpx.Client, fleet: Fleet, tmp_path: Path
) -> None:
    status = generate(api_module, prompt="a red cube", output_format="fbx")
    job_id = status["job_id"]
    assert status["formats"] == EVERY_FORMAT
    outputs = fleet.data_dir / "outputs"
    assert (outputs / f"{job_id}.master.glb").is_file()
    before = conversions_done(fleet)
    glb = download_as(api_module, job_id, "glb", tmp_path)  # the validator runs on it
    assert conversions_done(fleet) == before  # the master is served as it is
    mesh = trimesh.load(glb, force="mesh")
    assert len(mesh.faces) == faces_of(status)
    assert mesh.visual.kind == "texture"
    assert not (outputs / f"{job_id}.glb").exists()
    fbx = download(api_module, job_id, tmp_path)  # its own format: as it always was
    assert inspect_fbx(fbx, blender_python=BLENDER_PYTHON, timeout=120)["faces"] == faces_of(status)


def test_an_stl_job_converts_from_its_vertex_coloured_master_in_srgb(
    api_module: httpx.Client, tmp_path: Path
) -> None:
    status = generate(api_module, prompt="a red cube", output_format="stl")
    archive = download_as(api_module, status["job_id"], "obj", tmp_path)
    with zipfile.ZipFile(archive) as bundle:
        (name,) = bundle.namelist()  # no texture: the colours are on the vertex lines
        text = bundle.read(name).decode()
    colours = np.array(
        [line.split()[4:7] for line in text.splitlines() if line.startswith("v ")], dtype=float
    )
    assert len(colours) and faces_of(status) == text.count("\nf ")
    red, green, blue = colours.mean(axis=0) * 255
    assert red > 120 and red > 2 * green and red > 2 * blue  # sRGB, as the image was: not linear-dark


def test_a_job_without_a_master_answers_409_saying_what_to_do(
    api_module: httpx.Client, fleet: Fleet, tmp_path: Path
) -> None:
    status = generate(api_module, prompt="a blue sphere", output_format="obj")
    job_id = status["job_id"]
    (fleet.data_dir / "outputs" / f"{job_id}.master.glb").unlink()  # as for a job made before masters
    response = api_module.get(f"/3d/download/{job_id}", params={"format": "stl"})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "conflict"
    assert "no master GLB" in body["detail"] and '"output_format": "stl"' in body["detail"]
    assert api_module.get(f"/3d/download/{job_id}", params={"format": "glb"}).status_code == 409
    assert download(api_module, job_id, tmp_path).name == f"{job_id}.obj.zip"  # its own still works


def test_a_format_that_does_not_exist_is_a_422(api_module: httpx.Client, glb_job: dict) -> None:
    for bad in ("gltf", "OBJ", "", ".stl"):
        response = api_module.get(f"/3d/download/{glb_job['job_id']}", params={"format": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["code"] == "invalid_request"
        assert "format" in response.json()["detail"]


def test_a_job_not_completed_answers_409_for_any_format(api_module: httpx.Client) -> None:
    job_id = api_module.post("/3d/generate", json={"prompt": "a red torus"}).json()["job_id"]
    response = api_module.get(f"/3d/download/{job_id}", params={"format": "stl"})
    if response.status_code != 200:  # the job may already be done on a fast machine
        assert response.status_code == 409 and "once it is completed" in response.json()["detail"]
    wait_for_end(api_module, job_id)


# --- the files go with the job --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(fleet: Fleet) -> Iterator[Stack]:
    with running_stack(fleet, "reexport", STACK_DB, MESHFORGE_TIERS=json.dumps(SLOW_POSTPROCESSING)) as own:
        yield own


def outputs_of(fleet: Fleet, job_id: str) -> list[str]:
    return sorted(path.name for path in (fleet.data_dir / "outputs").glob(f"{job_id}*"))


def test_retention_deletes_the_master_and_every_conversion(
    stack: Stack, fleet: Fleet, tmp_path: Path
) -> None:
    with httpx.Client(base_url=stack.api, timeout=120) as api:
        job_id = generate(api, prompt="a red cube", output_format="obj")["job_id"]
        for output_format in ("stl", "usdz", "fbx"):
            download_as(api, job_id, output_format, tmp_path)
        assert outputs_of(fleet, job_id) == [
            f"{job_id}.{name}" for name in ("fbx", "master.glb", "obj.zip", "preview.png", "stl", "usdz")
        ]
        settings = DispatcherSettings(
            data_dir=fleet.data_dir, redis_url=stack.redis_url, job_retention_seconds=DAY
        )

        async def sweep() -> list[str]:
            redis = Redis.from_url(stack.redis_url, decode_responses=True)
            try:
                await redis.zadd(keys.JOBS_ENDED, {job_id: time.time() - DAY - 60}, xx=True)
                return (await Sweeper(redis, settings).sweep()).jobs
            finally:
                await redis.aclose()

        assert asyncio.run(sweep()) == [job_id]
        assert outputs_of(fleet, job_id) == []
        assert api.get(f"/3d/download/{job_id}", params={"format": "stl"}).status_code == 404


def test_a_job_cancelled_in_post_processing_leaves_no_master(stack: Stack, fleet: Fleet) -> None:
    with httpx.Client(base_url=stack.api, timeout=30) as api:
        response = api.post(
            "/3d/generate", json={"prompt": "a red torus", "output_format": "usdz", "quality_tier": "high"}
        )
        job_id = response.json()["job_id"]
        wait_for_state(api, job_id, {"post_processing"}, timeout=120)
        time.sleep(1.0)
        assert api.post(f"/3d/cancel/{job_id}").status_code == 200
        deadline = time.monotonic() + 10
        while outputs_of(fleet, job_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outputs_of(fleet, job_id) == []
        status = api.get(f"/3d/status/{job_id}").json()
        assert status["state"] == "cancelled" and status["formats"] == []
        assert api.get(f"/3d/download/{job_id}", params={"format": "glb"}).status_code == 409


def test_a_fleet_that_cannot_convert_answers_503_with_retry_after_not_a_hang(
    stack: Stack, fleet: Fleet
) -> None:
    with httpx.Client(base_url=stack.api, timeout=120) as api:
        job_id = generate(api, prompt="a red cube", output_format="glb")["job_id"]
    # A second API on the same jobs whose post-processing replica is not there (nothing listens).
    cut_off = Stack(
        fleet,
        "reexport-no-postprocess",
        {
            **stack.env,
            "MESHFORGE_ORCHESTRATOR_PORT": str(free_port()),
            "MESHFORGE_POSTPROCESS_SERVICE_URLS": f"http://127.0.0.1:{free_port()}",
        },
    )
    try:
        cut_off.start_api()
        with httpx.Client(base_url=cut_off.api, timeout=60) as api:
            started = time.monotonic()
            response = api.get(f"/3d/download/{job_id}", params={"format": "usdz"})
            waited = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "stage_unavailable"
            assert "try again in 5 s" in response.json()["detail"]
            assert response.headers["Retry-After"] == "5"
            assert waited < 15, f"the download hung {waited:.1f} s"
            assert api.get(f"/3d/download/{job_id}").status_code == 200  # its own format needs no replica
    finally:
        cut_off.stop()
