"""Triplane → coloured mesh: density on a grid (in chunks), marching cubes, colour at the vertices.

Everything here runs in fp32: densities are exp(raw − 1) and cross the threshold (25) far below fp16's
limit, but the interior easily exceeds it, and marching cubes interpolates between the two.
The mesh is in TripoSR's own frame (see docs/triposr.md); the backend turns it into the canonical one.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes

from meshforge.cancellation import check_cancelled, report_progress
from meshforge.errors import InvalidInput
from reconstruction_service.triposr.config import RendererConfig
from reconstruction_service.triposr.decoder import NeRFMLP, query_field


def grid_axis(resolution: int, radius: float, device: torch.device) -> torch.Tensor:
    """The grid's coordinates along one axis: linspace(0, 1) scaled to (−radius, radius), as upstream."""
    return torch.linspace(0.0, 1.0, resolution, device=device) * (radius - (-radius)) + (-radius)


@torch.inference_mode()
def density_grid(
    decoder: NeRFMLP, planes: torch.Tensor, cfg: RendererConfig, resolution: int, chunk_size: int
) -> torch.Tensor:
    """(resolution,)*3 float32 densities on the planes' device, axis order (x, y, z) ("ij" indexing)."""
    planes = planes.float()
    axis = grid_axis(resolution, cfg.radius, planes.device)
    total = resolution**3
    out = torch.empty(total, dtype=torch.float32, device=planes.device)
    chunks = -(-total // chunk_size)
    for start in range(0, total, chunk_size):
        check_cancelled()  # between chunks: a cancelled job frees the GPU here
        index = torch.arange(start, min(start + chunk_size, total), device=planes.device)
        i, j, k = index // (resolution * resolution), (index // resolution) % resolution, index % resolution
        points = torch.stack([axis[i], axis[j], axis[k]], dim=1)
        out[start : start + len(index)] = query_field(decoder, planes, points, cfg).density
        report_progress(start // chunk_size + 1, chunks, "chunks")  # the grid is most of a job's time
    return out.view(resolution, resolution, resolution)


def surface_cells(inside: torch.Tensor) -> torch.Tensor:
    """Every corner of every cube that the surface passes through (some corners inside, some not).

    Marching cubes restricted to these points gives exactly the unrestricted result (checked by the
    tests) and skips the ~99% of the grid far from the surface; computed where the grid lives (the GPU).
    """
    n = [size - 1 for size in inside.shape]

    def corners() -> list[torch.Tensor]:
        return [
            inside[dx : dx + n[0], dy : dy + n[1], dz : dz + n[2]]
            for dx in (0, 1)
            for dy in (0, 1)
            for dz in (0, 1)
        ]

    any_inside, all_inside = corners()[0].clone(), corners()[0].clone()
    for corner in corners()[1:]:
        any_inside |= corner
        all_inside &= corner
    crossing = any_inside & ~all_inside
    cells = torch.zeros_like(inside)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                cells[dx : dx + n[0], dy : dy + n[1], dz : dz + n[2]] |= crossing
    return cells


@torch.inference_mode()
def colours_at(
    decoder: NeRFMLP, planes: torch.Tensor, cfg: RendererConfig, points: np.ndarray, chunk_size: int
) -> np.ndarray:
    """(N, 3) colours in 0..1 at world points."""
    planes = planes.float()
    tensor = torch.as_tensor(points, dtype=torch.float32, device=planes.device)
    parts = []
    for start in range(0, len(tensor), chunk_size):
        check_cancelled()
        parts.append(query_field(decoder, planes, tensor[start : start + chunk_size], cfg).colour)
    return torch.cat(parts).cpu().numpy() if parts else np.zeros((0, 3), np.float32)


def surface_from_grid(
    density: torch.Tensor, threshold: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the density at ``threshold`` → (vertices in world units, faces), normals outward
    (toward lower density). Raises InvalidInput when the field never crosses the threshold."""
    low, high = float(density.min()), float(density.max())
    if not low < threshold < high:
        raise InvalidInput(
            f"TripoSR found no surface: the density field lies in [{low:.3g}, {high:.3g}] and never crosses "
            f"the threshold {threshold:g} (MESHFORGE_TRIPOSR_MC_THRESHOLD). Check that the image shows one "
            "object on a plain background, and that the model weights are the published ones."
        )
    # skimage keeps the array's axis order (x, y, z). On an (x, y, z) array its default winding makes
    # normals point into the high values; "ascent" flips it so they point outward, as upstream's do.
    cells = surface_cells(density > threshold).cpu().numpy()
    vertices, faces, _, _ = marching_cubes(
        density.cpu().numpy(), level=threshold, gradient_direction="ascent", mask=cells
    )
    resolution = density.shape[0]
    world = vertices / (resolution - 1.0) * (radius - (-radius)) + (-radius)
    return world.astype(np.float32), faces.astype(np.int64)


def extract_mesh(
    decoder: NeRFMLP,
    planes: torch.Tensor,
    cfg: RendererConfig,
    *,
    resolution: int,
    threshold: float,
    chunk_size: int,
) -> trimesh.Trimesh:
    """One triplane (3, C, H, W) → a mesh with per-vertex RGBA colours, in TripoSR's frame."""
    density = density_grid(decoder, planes, cfg, resolution, chunk_size)
    vertices, faces = surface_from_grid(density, threshold, cfg.radius)
    colours = colours_at(decoder, planes, cfg, vertices, chunk_size)
    rgba = np.concatenate([np.round(colours * 255.0), np.full((len(colours), 1), 255.0)], axis=1)
    return trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=rgba.astype(np.uint8), process=False)
