"""The six Zero123++ views, the cameras the LRM is told they came from, and InstantMesh's frame."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reconstruction_service.instantmesh.cameras import (  # noqa: E402
    AZIMUTHS_DEG,
    ELEVATIONS_DEG,
    views_to_tensor,
    zero123plus_cameras,
)
from reconstruction_service.instantmesh.frame import INSTANTMESH_TO_CANONICAL, to_canonical  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "instantmesh"


def test_cameras_are_upstreams_get_zero123plus_input_cameras() -> None:
    upstream = np.load(DATA / "tiny_upstream.npz")["cameras"]
    assert np.abs(zero123plus_cameras().numpy() - upstream).max() < 1e-6


def test_each_camera_sits_at_its_azimuth_and_elevation_and_looks_at_the_origin() -> None:
    cameras = zero123plus_cameras().double().numpy()
    assert cameras.shape == (6, 16)
    assert AZIMUTHS_DEG == (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)
    assert ELEVATIONS_DEG == (20.0, -10.0, 20.0, -10.0, 20.0, -10.0)
    for camera, azimuth, elevation in zip(cameras, AZIMUTHS_DEG, ELEVATIONS_DEG, strict=True):
        c2w = camera[:12].reshape(3, 4)  # row-major 3 × 4: columns right, up, backward, position
        rotation, position = c2w[:, :3], c2w[:, 3]
        a, e = math.radians(azimuth), math.radians(elevation)
        expected = 4.0 * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
        assert np.allclose(position, expected, atol=1e-6)
        assert np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)
        assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-6)
        assert np.allclose(-rotation[:, 2], -position / 4.0, atol=1e-6)  # OpenGL: looks along its −z
        assert rotation[2, 0] == pytest.approx(0.0, abs=1e-7)  # right stays horizontal (z-up world)
        assert rotation[2, 1] > 0  # and the camera's up points up
        focal = 0.5 / math.tan(math.radians(15.0))
        assert np.allclose(camera[12:], [focal, focal, 0.5, 0.5], atol=1e-6)


def test_views_become_the_models_input_as_upstream_reads_them() -> None:
    views = np.stack([np.full((320, 320, 3), k, dtype=np.uint8) for k in range(6)])
    tensor = views_to_tensor(views)
    assert tensor.shape == (1, 6, 3, 320, 320) and tensor.dtype == torch.float32
    assert [round(float(tensor[0, k].max()) * 255) for k in range(6)] == [0, 1, 2, 3, 4, 5]


def test_instantmesh_front_up_and_right_map_to_the_canonical_frame() -> None:
    """Input camera on +x (front), z up, image right +y → canonical front +Z, up +Y, right +X."""
    front, up, right = to_canonical(np.eye(3)[[0, 2, 1]])
    assert np.allclose(front, [0, 0, 1]) and np.allclose(up, [0, 1, 0]) and np.allclose(right, [1, 0, 0])
    assert np.linalg.det(INSTANTMESH_TO_CANONICAL) == pytest.approx(1.0)  # a rotation: winding kept
    # Zero123++'s view at azimuth 90° lands where the canonical right view (azimuth 90°, camera at +X) is.
    position = zero123plus_cameras().double().numpy()[1, :12].reshape(3, 4)[:, 3]
    assert np.allclose(
        to_canonical(position[None])[0] / 4.0,
        [math.cos(math.radians(10)), math.sin(math.radians(-10)), 0],
        atol=1e-6,
    )


def test_reconstruct_rotates_the_lrm_mesh_into_the_canonical_frame(tmp_path: Path) -> None:
    from reconstruction_service.instantmesh.mesh import extract_mesh, model_grid
    from reconstruction_service.instantmesh.model import load_pretrained
    from reconstruction_service.instantmesh.reconstruct import reconstruct, triplanes
    from tests.tiny_instantmesh import build_tiny_instantmesh, tiny_inputs

    model = load_pretrained(build_tiny_instantmesh(tmp_path / "models", ball=True))
    views = (tiny_inputs().transpose(0, 2, 3, 1) * 255).astype(np.uint8)  # (6, H, W, 3) as Zero123++ gives
    grid = model_grid(model.config, "cpu")
    mesh = reconstruct(model, views, grid)
    native = extract_mesh(model.synthesizer, triplanes(model, views), grid)
    assert np.array_equal(mesh.faces, native.faces) and np.array_equal(mesh.colours, native.colours)
    assert np.allclose(mesh.vertices, native.vertices[:, [1, 2, 0]])  # (X, Y, Z) = (y, z, x)
    assert mesh.vertices.dtype == np.float32 and len(mesh.faces) > 0
