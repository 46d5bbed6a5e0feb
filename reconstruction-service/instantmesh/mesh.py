"""Triplanes → coloured mesh: SDF on the FlexiCubes grid, deformation and cube weights where the surface
is, FlexiCubes, colour at the vertices. Upstream's ``InstantMesh.extract_mesh`` (vertex colours).

Upstream evaluates every head at every grid vertex and cube at once (16 GB of corner features at grid
128); here the SDF is evaluated everywhere in chunks, and the deformation and the weights only at the
surface cubes, which are the only ones FlexiCubes reads: the same numbers for a fraction of the work.
Everything runs in fp32 on the planes' device. The mesh is in InstantMesh's frame (z up; see frame.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from meshforge.cancellation import check_cancelled
from reconstruction_service.instantmesh.config import LrmConfig
from reconstruction_service.instantmesh.flexicubes import VoxelGrid, extract, surface_cubes, voxel_grid
from reconstruction_service.instantmesh.synthesizer import Synthesizer, sample_planes

DEFORMATION_MULTIPLIER = 4.0
DEFAULT_CHUNK = 262_144


@dataclass(frozen=True)
class LrmMesh:
    vertices: np.ndarray  # (N, 3) float32; InstantMesh's frame from extract_mesh, canonical from reconstruct
    faces: np.ndarray  # (F, 3) int64, wound to face outside (positive SDF)
    colours: np.ndarray  # (N, 3) uint8


def _chunks(total: int, size: int, device: torch.device) -> Iterator[torch.Tensor]:
    for start in range(0, total, size):
        check_cancelled()  # between chunks: a cancelled job frees the device here
        yield torch.arange(start, min(start + size, total), device=device)


def _map_points(
    head: Callable[[torch.Tensor], torch.Tensor], planes: torch.Tensor, points: torch.Tensor, chunk: int
) -> torch.Tensor:
    return torch.cat(
        [head(sample_planes(planes, points[i])) for i in _chunks(len(points), chunk, points.device)]
    )


def fix_empty_shape(sdf: torch.Tensor, res: int) -> torch.Tensor:
    """Upstream's guard: if the grid's interior is all one sign, force a surface: the centre vertex
    positive (1 − min), two layers at the boundary negative (−1 − max). A forced value that happens to
    be exactly 0 keeps the old one, as upstream's mask does."""
    cube = sdf.view(res + 1, res + 1, res + 1)
    interior = cube[1:-1, 1:-1, 1:-1]
    if bool((interior > 0).any()) and bool((interior < 0).any()):
        return sdf
    forced = torch.zeros_like(cube)
    boundary = torch.zeros_like(cube, dtype=torch.bool)
    for axis in range(3):
        boundary.narrow(axis, 0, 2).fill_(True)
        boundary.narrow(axis, res - 1, 2).fill_(True)
    centre = res // 2 + 1
    forced[boundary] = -1 - sdf.max()
    forced[centre, centre, centre] = 1 - sdf.min()
    return torch.where(forced == 0, cube, forced).reshape(-1)


@dataclass(frozen=True)
class Geometry:
    """FlexiCubes' inputs and outputs, kept for the conformance comparison."""

    sdf: torch.Tensor  # (V,) after the empty-shape guard
    cubes: torch.Tensor  # surface cube ids
    weights: torch.Tensor  # (len(cubes), 21) raw
    positions: torch.Tensor  # (V, 3), deformed at the surface cubes' corners
    vertices: torch.Tensor
    faces: torch.Tensor


@torch.inference_mode()
def flexicubes_geometry(
    synthesizer: Synthesizer, planes: torch.Tensor, grid: VoxelGrid, chunk: int = DEFAULT_CHUNK
) -> Geometry:
    """planes (3, C, H, W) of one object → its surface, as upstream's ``get_geometry_prediction``."""
    planes = planes.float()
    sdf = fix_empty_shape(_map_points(synthesizer.sdf, planes, grid.vertices, chunk), grid.res)
    cubes = surface_cubes(grid, sdf)
    corners = torch.unique(grid.cubes[cubes])
    raw = _map_points(synthesizer.deformation, planes, grid.vertices[corners], chunk)
    positions = grid.vertices.clone()
    positions[corners] += 1.0 / (grid.res * DEFORMATION_MULTIPLIER) * torch.tanh(raw)
    weights = torch.cat(
        [
            synthesizer.cube_weights(
                sample_planes(planes, grid.vertices[grid.cubes[cubes[i]]].reshape(-1, 3)).view(len(i), 8, -1)
            )
            for i in _chunks(len(cubes), max(1, chunk // 8), planes.device)
        ]
        or [torch.zeros((0, 21), device=planes.device)]
    )
    vertices, faces = extract(grid, sdf, positions, cubes, weights)
    return Geometry(
        sdf=sdf, cubes=cubes, weights=weights, positions=positions, vertices=vertices, faces=faces
    )


@torch.inference_mode()
def vertex_colours(
    synthesizer: Synthesizer, planes: torch.Tensor, vertices: torch.Tensor, chunk: int
) -> np.ndarray:
    """Texture MLP at the vertices, clamped to 0..1, × 255 and truncated to uint8 (upstream's astype)."""
    if len(vertices) == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    rgb = _map_points(synthesizer.rgb, planes.float(), vertices, chunk).clamp(0, 1)
    return (rgb.cpu().numpy() * 255).astype(np.uint8)


def extract_mesh(
    synthesizer: Synthesizer,
    planes: torch.Tensor,
    grid: VoxelGrid,
    chunk: int = DEFAULT_CHUNK,
) -> LrmMesh:
    geometry = flexicubes_geometry(synthesizer, planes, grid, chunk)
    colours = vertex_colours(synthesizer, planes, geometry.vertices, chunk)
    return LrmMesh(
        vertices=geometry.vertices.cpu().numpy().astype(np.float32),
        faces=geometry.faces.cpu().numpy().astype(np.int64),
        colours=colours,
    )


def model_grid(config: LrmConfig, device: torch.device | str) -> VoxelGrid:
    """The model's FlexiCubes grid on its device: made once per process (~160 MB at res 128)."""
    return voxel_grid(config.grid_res, config.grid_scale, device)
