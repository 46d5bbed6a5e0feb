"""Prompt or images → asset, through every real service process."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import trimesh
from PIL import Image
from pxr import Usd, UsdGeom, UsdShade

from postprocess_service.blender import inspect_fbx
from tests.fleet import REPO, download, wait_for_end
from tests.meshes import (
    box_fill,
    canonical_photos,
    chamfer,
    load,
    mean_colour,
    normalised,
    radial_spread,
    stacked_boxes,
)

pytestmark = pytest.mark.fleet

BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"

# Measured visual-hull error for the stacked-boxes object (docs/views.md); the bound leaves a margin.
CHAMFER_BOUND_4_VIEWS = 0.03


def generate(api: httpx.Client, **body: object) -> dict:
    response = api.post("/3d/generate", json=body)
    assert response.status_code == 200, response.text
    return wait_for_end(api, response.json()["job_id"])


def test_red_cube_prompt_gives_a_closed_red_box(api: httpx.Client, tmp_path: Path) -> None:
    status = generate(api, prompt="a red cube", output_format="glb")
    assert status["state"] == "completed", status["message"]
    path = download(api, status["job_id"], tmp_path)
    assert path.read_bytes()[:4] == b"glTF"
    mesh = load(path)
    assert mesh.is_watertight
    assert mesh.extents.max() / mesh.extents.min() < 1.2
    assert box_fill(mesh) > 0.8  # a perspective visual hull bulges a little in front of each face
    red, green, blue = mean_colour(mesh)
    assert red > 120 and red > 2 * green and red > 2 * blue


def test_blue_sphere_prompt_gives_a_round_blue_mesh(api: httpx.Client, tmp_path: Path) -> None:
    status = generate(api, prompt="a blue sphere")
    assert status["state"] == "completed", status["message"]
    mesh = load(download(api, status["job_id"], tmp_path))
    assert mesh.is_watertight
    assert mesh.extents.max() / mesh.extents.min() < 1.15
    assert radial_spread(mesh) < 0.06
    assert 0.45 < box_fill(mesh) < 0.65
    red, green, blue = mean_colour(mesh)
    assert blue > 120 and blue > 1.5 * red and blue > 1.2 * green


def test_status_reports_progress_timings_request_and_backends(api: httpx.Client) -> None:
    status = generate(
        api, prompt="a tall green cylinder", output_format="obj", quality_tier="standard", seed=7
    )
    assert status["state"] == "completed", status["message"]
    assert status["progress"] == 100
    assert status["asset_path"].endswith(".obj.zip")
    assert status["download_url"] == f"/3d/download/{status['job_id']}"
    assert status["preview_url"] == f"/3d/preview/{status['job_id']}"
    assert status["request"] == {
        "prompt": "a tall green cylinder",
        "output_format": "obj",
        "quality_tier": "standard",
        "seed": 7,
        "target_faces": None,
        "origin": "bottom",
        "height_m": None,
    }
    assert status["updated_at"] >= status["created_at"]
    stages = status["stages"]
    assert list(stages) == ["generating_images", "reconstructing_3d", "post_processing"]
    assert stages["generating_images"]["backend"] == "flux-service:procedural"
    assert stages["reconstructing_3d"]["backend"] == "visual_hull"
    assert stages["post_processing"]["backend"] == "trimesh"
    assert all(stage["seconds"] > 0 for stage in stages.values())


def test_same_seed_and_prompt_give_the_same_asset(api: httpx.Client, tmp_path: Path) -> None:
    digests = []
    for attempt in range(2):
        status = generate(api, prompt="a yellow cone", seed=1234)
        assert status["state"] == "completed", status["message"]
        folder = tmp_path / str(attempt)
        folder.mkdir()
        digests.append(hashlib.sha256(download(api, status["job_id"], folder).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_prompt_the_offline_backend_cannot_draw_fails_with_a_hint(api: httpx.Client) -> None:
    status = generate(api, prompt="a portrait of a medieval knight")
    assert status["state"] == "failed"
    assert "image stage failed" in status["message"]
    assert "simple shape" in status["message"]
    assert "FLUX" in status["message"]


def test_preview_is_a_png_of_the_finished_asset(api: httpx.Client) -> None:
    status = generate(api, prompt="a red torus")
    assert status["state"] == "completed", status["message"]
    response = api.get(status["preview_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content)).convert("RGB")
    assert image.size == (512, 512)
    red, green, _ = np.asarray(image, dtype=float).reshape(-1, 3).max(axis=0)
    assert red > 150 and red > green + 60


def test_target_faces_origin_and_height_shape_the_asset(api: httpx.Client, tmp_path: Path) -> None:
    status = generate(api, prompt="a blue sphere", target_faces=3000, origin="bottom", height_m=2.0)
    assert status["state"] == "completed", status["message"]
    mesh = load(download(api, status["job_id"], tmp_path))
    assert abs(len(mesh.faces) - 3000) <= 150
    assert mesh.extents[1] == pytest.approx(2.0, rel=1e-3)
    assert mesh.bounds[0][1] == pytest.approx(0.0, abs=1e-6)
    assert np.abs(mesh.bounds.mean(axis=0)[[0, 2]]).max() < 1e-6


def test_obj_download_is_a_zip_with_obj_mtl_and_texture(api: httpx.Client, tmp_path: Path) -> None:
    status = generate(api, prompt="a yellow pyramid", output_format="obj")
    assert status["state"] == "completed", status["message"]
    archive = download(api, status["job_id"], tmp_path)
    assert archive.name.endswith(".obj.zip")
    with zipfile.ZipFile(archive) as bundle:
        names = sorted(bundle.namelist())
        bundle.extractall(tmp_path / "unzipped")
    assert [Path(n).suffix for n in names] == [".mtl", ".obj", ".png"]
    obj = next((tmp_path / "unzipped").glob("*.obj"))
    mesh = trimesh.load(obj, force="mesh")
    assert mesh.visual.kind == "texture" and mesh.visual.material.image is not None


def test_fbx_asset_reimports_in_blender_with_its_texture(api: httpx.Client, tmp_path: Path) -> None:
    status = generate(api, prompt="a red cube", output_format="fbx")
    assert status["state"] == "completed", status["message"]
    fbx = download(api, status["job_id"], tmp_path)
    assert fbx.read_bytes()[:18] == b"Kaydara FBX Binary"
    summary = inspect_fbx(fbx, blender_python=BLENDER_PYTHON, timeout=120)
    assert summary["faces"] == status["stages"]["post_processing"]["detail"]["faces"]
    assert summary["images_with_data"] >= 1


def test_usdz_download_is_a_usd_package_with_a_red_texture(api: httpx.Client, tmp_path: Path) -> None:
    status = generate(api, prompt="a red cube", output_format="usdz")
    assert status["state"] == "completed", status["message"]
    finished = status["stages"]["post_processing"]["detail"]
    response = api.get(f"/3d/download/{status['job_id']}")
    assert response.headers["content-type"] == "model/vnd.usdz+zip"
    package = download(api, status["job_id"], tmp_path)
    assert package.suffix == ".usdz"
    with zipfile.ZipFile(package) as bundle:  # a USDZ is an uncompressed zip, its USD layer first
        first, *_ = bundle.infolist()
        assert Path(first.filename).suffix in {".usda", ".usdc"}
        assert {info.compress_type for info in bundle.infolist()} == {zipfile.ZIP_STORED}
        stage = Usd.Stage.Open(str(package))
        (mesh,) = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
        assert len(mesh.GetFaceVertexCountsAttr().Get()) == finished["faces"]
        material, _ = UsdShade.MaterialBindingAPI(mesh.GetPrim()).ComputeBoundMaterial()
        surface = material.ComputeSurfaceSource()[0]
        (texture,) = surface.GetInput("diffuseColor").GetConnectedSources()[0]
        texture_file = UsdShade.Shader(texture.source.GetPrim()).GetInput("file").Get().path
        image = Image.open(io.BytesIO(bundle.read(texture_file))).convert("RGB")
    # Most of the atlas is covered by the cube's faces; the gutters and background copy their colour.
    red, green, blue = np.asarray(image, dtype=float).reshape(-1, 3).mean(axis=0)
    assert red > 120 and red > 2 * green and red > 2 * blue


def test_uploaded_canonical_views_of_a_known_mesh_reconstruct_within_chamfer_bound(
    api: httpx.Client, tmp_path: Path
) -> None:
    truth = stacked_boxes()
    files = [
        ("files", (f"view{i}.png", png, "image/png")) for i, png in enumerate(canonical_photos(truth, 4))
    ]
    uploaded = api.post("/3d/upload", files=files)
    assert uploaded.status_code == 201, uploaded.text
    paths = uploaded.json()["image_paths"]
    assert len(paths) == 4 and all(p.startswith("uploads/") for p in paths)
    job = api.post("/3d/from-image", json={"image_paths": paths, "output_format": "glb"})
    assert job.status_code == 200, job.text
    status = wait_for_end(api, job.json()["job_id"])
    assert status["state"] == "completed", status["message"]
    result = load(download(api, status["job_id"], tmp_path))
    assert result.is_watertight
    assert chamfer(normalised(result), normalised(truth)) < CHAMFER_BOUND_4_VIEWS


def test_single_uploaded_image_gives_a_documented_low_fidelity_mesh(
    api: httpx.Client, tmp_path: Path
) -> None:
    [front] = canonical_photos(stacked_boxes(), 1)
    paths = api.post("/3d/upload", files=[("files", ("front.png", front, "image/png"))]).json()["image_paths"]
    status = wait_for_end(api, api.post("/3d/from-image", json={"image_paths": paths}).json()["job_id"])
    assert status["state"] == "completed", status["message"]
    assert status["stages"]["reconstructing_3d"]["detail"]["fidelity"].startswith("low")
    assert load(download(api, status["job_id"], tmp_path)).is_watertight
