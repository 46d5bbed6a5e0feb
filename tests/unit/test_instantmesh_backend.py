"""The instantmesh reconstruction backend on tiny random weights in the published layouts.

Both models load through the production path (locate_model → Zero123++'s folder with InstantMesh's
fine-tuned UNet, instant_mesh_large.ckpt): one image → six Zero123++ views, kept as PNG files → the LRM →
a coloured mesh in the canonical frame. The tiny LRM's SDF is a ball (tests/tiny_instantmesh.py), so the
mesh is known although the views are noise.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from meshforge.cancellation import WorkRegistry, run_cancellable  # noqa: E402
from meshforge.errors import JobCancelled, ModelNotFound  # noqa: E402
from meshforge.geometry.views import OBJECT_EXTENT, VIEWS_BY_NAME, view_set  # noqa: E402
from meshforge.settings import ReconstructionSettings  # noqa: E402
from reconstruction_service.backends import BACKENDS, load_backend  # noqa: E402
from reconstruction_service.backends.base import DrawsViews  # noqa: E402
from reconstruction_service.backends.instantmesh import (  # noqa: E402
    InstantMesh,
    condition_seed,
    square_condition,
    to_trimesh,
)
from reconstruction_service.instantmesh.mesh import LrmMesh  # noqa: E402
from tests.tiny_instantmesh import build_tiny_instantmesh  # noqa: E402
from tests.tiny_zero123plus import build_finetuned_unet, build_tiny_zero123plus  # noqa: E402

JOB = "0123456789abcdef0123456789abcdef"


def red_square(offset: int = 0, size: int = 128) -> np.ndarray:
    image = np.zeros((size, size, 4), dtype=np.uint8)
    image[30 + offset : 100 + offset, 30:100] = (200, 40, 40, 255)
    return image


def build_models(models: Path) -> None:
    build_tiny_zero123plus(models)
    build_finetuned_unet(models)
    build_tiny_instantmesh(models, ball=True)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("instantmesh-data")
    build_models(data / "models")
    return data


@pytest.fixture(scope="module")
def backend(data_dir: Path) -> InstantMesh:
    return InstantMesh(ReconstructionSettings(data_dir=data_dir, zero123plus_steps=2))


def test_instantmesh_is_offered_and_names_every_missing_model_with_its_download(tmp_path: Path) -> None:
    assert "instantmesh" in BACKENDS.names
    with pytest.raises(ModelNotFound) as missing:
        InstantMesh(ReconstructionSettings(data_dir=tmp_path))
    message = missing.value.message
    assert message.startswith("model TencentARC/InstantMesh not found")
    assert "model sudo-ai/zero123plus-v1.2 not found" in message
    assert "scripts/download-models TencentARC/InstantMesh" in message
    assert "scripts/download-models sudo-ai/zero123plus-v1.2" in message
    assert "MESHFORGE_INSTANTMESH_MODEL_PATH" in message and "MESHFORGE_ZERO123PLUS_MODEL_PATH" in message
    assert str(tmp_path / "models" / "TencentARC" / "InstantMesh") in message


def test_with_only_the_lrm_checkpoint_it_asks_for_the_fine_tuned_unet_and_zero123plus(tmp_path: Path) -> None:
    build_tiny_instantmesh(tmp_path / "models")  # the checkpoint, not diffusion_pytorch_model.bin
    with pytest.raises(ModelNotFound) as missing:
        InstantMesh(ReconstructionSettings(data_dir=tmp_path))
    assert "instant_mesh_large.ckpt, diffusion_pytorch_model.bin" in missing.value.message
    assert "sudo-ai/zero123plus-v1.2 not found" in missing.value.message


def test_load_backend_builds_it_from_plain_folders_the_settings_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_models(tmp_path / "elsewhere")
    (tmp_path / "models").mkdir()  # a relative path is under models/
    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_RECONSTRUCTION_BACKEND", "instantmesh")
    monkeypatch.setenv(
        "MESHFORGE_INSTANTMESH_MODEL_PATH", str(tmp_path / "elsewhere" / "TencentARC" / "InstantMesh")
    )
    monkeypatch.setenv("MESHFORGE_ZERO123PLUS_MODEL_PATH", "../elsewhere/sudo-ai/zero123plus-v1.2")
    loaded = load_backend(ReconstructionSettings(_env_file=None))
    assert loaded.name == "instantmesh"
    assert isinstance(loaded, DrawsViews)


def test_it_advertises_one_view_at_the_size_zero123plus_takes_its_condition(backend: InstantMesh) -> None:
    # The tiny folder's VAE image processor crops to 320² (the published v1.2 folder's: 512²).
    assert (backend.capabilities.max_views, backend.capabilities.image_size) == (1, 320)


def test_one_image_gives_a_coloured_mesh_in_the_canonical_frame_and_six_kept_views(
    backend: InstantMesh, tmp_path: Path
) -> None:
    folder = tmp_path / "generated"
    mesh, detail = backend.reconstruct_keeping_views([red_square()], list(view_set(1)), 96, folder)
    assert mesh.is_watertight and mesh.volume > 0  # the tiny model's ball, faces outward
    assert mesh.extents.max() == pytest.approx(OBJECT_EXTENT)
    assert np.allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-9)
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    assert len(np.unique(mesh.faces)) == len(mesh.vertices)  # no vertex without a face
    assert detail["used_view"] == "front" and "note" not in detail
    assert (detail["steps"], detail["guidance"], detail["device"]) == (2, 4.0, "cpu")
    assert (detail["zero123plus_dtype"], detail["instantmesh_dtype"]) == ("float32", "float32")
    assert [camera["azimuth"] for camera in detail["generated_cameras"]] == [30, 90, 150, 210, 270, 330]
    names = [f"zero123-{k}.png" for k in range(6)]
    assert detail["generated_views"] == [str(folder / name) for name in names]
    assert sorted(p.name for p in folder.iterdir()) == names  # nothing else, no temporary file left
    for name in names:
        with Image.open(folder / name) as view:
            assert (view.size, view.mode) == ((320, 320), "RGB")
    for key in ("views_seconds", "lrm_seconds", "mesh_seconds"):
        assert detail[key] >= 0


def test_the_same_view_always_draws_the_same_six_views(backend: InstantMesh, tmp_path: Path) -> None:
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _, detail = backend.reconstruct_keeping_views([red_square()], list(view_set(1)), 96, first)
    _, repeat = backend.reconstruct_keeping_views([red_square()], list(view_set(1)), 96, again)
    _, changed = backend.reconstruct_keeping_views([red_square(offset=8)], list(view_set(1)), 96, other)
    assert detail["seed"] == repeat["seed"] != changed["seed"]
    assert (first / "zero123-3.png").read_bytes() == (again / "zero123-3.png").read_bytes()
    assert (first / "zero123-3.png").read_bytes() != (other / "zero123-3.png").read_bytes()
    assert condition_seed(red_square()) == detail["seed"]


def test_with_several_views_the_front_view_is_used_and_the_result_says_so(backend: InstantMesh) -> None:
    views = [VIEWS_BY_NAME["right"], VIEWS_BY_NAME["front"], VIEWS_BY_NAME["back"], VIEWS_BY_NAME["left"]]
    images = [red_square(offset=4 * i) for i in range(4)]
    mesh, detail = backend.reconstruct(images, views, resolution=96)
    assert len(mesh.faces) > 0
    assert detail["used_view"] == "front" and detail["seed"] == condition_seed(images[1])
    assert detail["generated_views"] == []  # reconstruct() keeps them nowhere
    assert detail["note"] == (
        "InstantMesh reconstructs from one image: it used the front view and ignored the other 3; "
        "Zero123++ drew six views of its own from it"
    )


@pytest.mark.parametrize("channels", [4, 3])
def test_a_non_square_view_is_padded_square_with_transparency(channels: int) -> None:
    wide = np.full((40, 100, channels), 255, dtype=np.uint8)
    square = np.asarray(square_condition(wide))
    assert square.shape == (100, 100, 4)
    assert (
        (square[30:70, :, 3] == 255).all()
        and (square[:30, :, 3] == 0).all()
        and (square[70:, :, 3] == 0).all()
    )


def test_the_mesh_is_centred_and_scaled_and_unused_vertices_are_dropped() -> None:
    box = trimesh.creation.box(extents=(0.4, 0.8, 0.2))
    box.apply_translation((1.0, 2.0, 3.0))
    stray = np.array([[50.0, 50.0, 50.0]], dtype=np.float32)  # a boundary dual vertex no face uses
    vertices = np.vstack([stray, box.vertices.astype(np.float32)])
    colours = np.arange(len(vertices) * 3, dtype=np.uint8).reshape(-1, 3)
    mesh = to_trimesh(LrmMesh(vertices, box.faces + 1, colours))
    assert len(mesh.vertices) == len(box.vertices)
    assert mesh.extents == pytest.approx(np.array([0.4, 0.8, 0.2]) * OBJECT_EXTENT / 0.8, rel=1e-5)
    assert np.allclose(mesh.bounds.mean(axis=0), 0.0)
    assert (mesh.visual.vertex_colors[:, :3] == colours[1:]).all() and (
        mesh.visual.vertex_colors[:, 3] == 255
    ).all()
    assert mesh.volume == pytest.approx(box.volume * (OBJECT_EXTENT / 0.8) ** 3, rel=1e-5)


def test_a_cancelled_job_stops_between_diffusion_steps_and_keeps_no_view(
    backend: InstantMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = WorkRegistry()
    unet = backend.pipeline.components.unet
    forward = unet.forward
    calls: list[int] = []
    reconstructions: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:  # the reference pass of the second of 6 steps
            registry.cancel(JOB)
        return forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", counting)
    monkeypatch.setattr(backend.lrm, "forward", lambda *a: reconstructions.append(1))
    monkeypatch.setattr(backend, "steps", 6)
    folder = tmp_path / "generated"

    async def run() -> object:
        return await run_cancellable(
            backend.reconstruct_keeping_views,
            [red_square()],
            list(view_set(1)),
            96,
            folder,
            job_id=JOB,
            registry=registry,
        )

    with pytest.raises(JobCancelled):
        asyncio.run(run())
    assert len(calls) == 4  # the second step finished its denoising pass, the third never began
    assert reconstructions == [] and not folder.exists()
