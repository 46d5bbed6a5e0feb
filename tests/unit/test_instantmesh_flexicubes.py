"""FlexiCubes as InstantMesh runs it: our tables and extraction against upstream's, and on a sphere.

tests/data/instantmesh/flexicubes_upstream.npz holds upstream's three DMC tables and its meshes of two
random fields made by ``random_field`` below (docs/instantmesh.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
trimesh = pytest.importorskip("trimesh")

from reconstruction_service.instantmesh.dmc_tables import (  # noqa: E402
    AMBIGUITY_TABLE,
    DMC_TABLE,
    NUM_DUAL_VERTICES,
)
from reconstruction_service.instantmesh.flexicubes import (  # noqa: E402
    _case_ids,
    extract,
    surface_cubes,
    voxel_grid,
)
from reconstruction_service.instantmesh.mesh import fix_empty_shape  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "instantmesh"
SCALE = 2.1


@pytest.fixture(scope="module")
def upstream() -> dict[str, np.ndarray]:
    with np.load(DATA / "flexicubes_upstream.npz") as arrays:
        return dict(arrays)


def random_field(seed: int, res: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An adversarial field: independent signs at every vertex (many ambiguous cubes), random
    deformations within upstream's bound and random weights."""
    rng = np.random.default_rng(seed)
    side = res + 1
    sdf = rng.standard_normal(side**3).astype(np.float32)
    deformation = (rng.uniform(-1, 1, (side**3, 3)) / (4 * res)).astype(np.float32)
    weights = (0.3 * rng.standard_normal((res**3, 21))).astype(np.float32)
    return torch.from_numpy(sdf), torch.from_numpy(deformation), torch.from_numpy(weights)


def test_derived_tables_are_upstreams_tables(upstream: dict[str, np.ndarray]) -> None:
    assert np.array_equal(DMC_TABLE.numpy(), upstream["dmc_table"])
    assert np.array_equal(NUM_DUAL_VERTICES.numpy(), upstream["num_vd_table"])
    assert np.array_equal(AMBIGUITY_TABLE.numpy(), upstream["check_table"])


def test_grid_vertices_are_numbered_x_slowest_and_rounded_like_upstream() -> None:
    grid = voxel_grid(128, SCALE)
    assert grid.vertices.shape == (129**3, 3) and grid.cubes.shape == (128**3, 8)
    i, j, k = 3, 2, 128
    vertex = grid.vertices[(i * 129 + j) * 129 + k]
    # 3/128 · 1e5 = 2343.75 → 2344; 2/128 · 1e5 = 1562.5 → 1562 (half to even), then centred and scaled.
    expected = (torch.tensor([0.02344, 0.01562, 1.0], dtype=torch.float64) - 0.5) * SCALE
    assert torch.allclose(vertex.double(), expected, rtol=0, atol=1e-6)
    corner_7 = grid.cubes[0, 7]
    assert corner_7 == (1 * 129 + 1) * 129 + 1


@pytest.mark.parametrize("seed, res", [(0, 6), (1, 8)])
def test_random_fields_give_upstreams_vertices_and_faces(
    seed: int, res: int, upstream: dict[str, np.ndarray]
) -> None:
    grid = voxel_grid(res, SCALE)
    sdf, deformation, weights = random_field(seed, res)
    cubes = surface_cubes(grid, sdf)
    bits = torch.tensor([1 << c for c in range(8)])
    plain = ((sdf[grid.cubes[cubes]] < 0).long() * bits).sum(dim=1)
    assert (plain != _case_ids(grid, sdf, cubes)).sum() > 0  # the C16/C19 fix is exercised
    vertices, faces = extract(grid, sdf, grid.vertices + deformation, cubes, weights[cubes])
    assert np.array_equal(vertices.numpy(), upstream[f"vertices_{seed}"])
    assert np.array_equal(faces.numpy(), upstream[f"faces_{seed}"].astype(np.int64))


def test_a_sphere_comes_out_closed_with_outward_faces_and_its_radius() -> None:
    res, radius = 32, 0.6
    grid = voxel_grid(res, SCALE)
    sdf = grid.vertices.norm(dim=1) - radius
    cubes = surface_cubes(grid, sdf)
    vertices, faces = extract(grid, sdf, grid.vertices, cubes, torch.zeros(len(cubes), 21))
    mesh = trimesh.Trimesh(vertices.numpy(), faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert len(mesh.split(only_watertight=False)) == 1
    voxel = SCALE / res
    distances = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(distances - radius).max() < 0.1 * voxel
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.02)  # positive: faces point out


def test_a_field_without_a_surface_gives_an_empty_mesh_and_upstreams_guard_forces_one() -> None:
    res = 8
    grid = voxel_grid(res, SCALE)
    outside = torch.full((len(grid.vertices),), 0.25)
    vertices, faces = extract(grid, outside, grid.vertices, surface_cubes(grid, outside), torch.zeros(0, 21))
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)
    forced = fix_empty_shape(outside, res).view(res + 1, res + 1, res + 1)
    assert forced[res // 2 + 1, res // 2 + 1, res // 2 + 1] == 0.75  # 1 − min(sdf)
    assert (forced[:2] == -1.25).all() and (forced[:, :, -2:] == -1.25).all()  # −1 − max(sdf)
    assert forced[3, 3, 3] == 0.25  # untouched
    assert len(surface_cubes(grid, forced.reshape(-1))) > 0
    crossing = torch.linspace(-1, 1, len(grid.vertices))
    assert torch.equal(fix_empty_shape(crossing, res), crossing)  # a field with a surface is left alone
