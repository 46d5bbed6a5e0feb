"""FlexiCubes surface extraction (inference path), as InstantMesh runs it.

Dual contouring on a regular grid: every surface cube emits one dual vertex per crossed-edge group
(dmc_tables.py), placed at the β-weighted mean of its edges' crossings, each crossing moved along its
edge by the corner weights α; every crossed interior edge joins the dual vertices of its 4 cubes into
a quad, split into two triangles along the diagonal with the larger product of the cubes' γ. Faces are
wound to face the positive SDF (outside). This is FlexiCubes with ``training=False``, no ``grad_func``
and no tetrahedra, the way InstantMesh's ``extract_mesh`` calls it.

Outputs follow upstream's order (vertices by dual-vertex count, then cube, then group; the flipped
quads first, each set by edge), so the arrays compare one to one with upstream's; see
docs/instantmesh.md. Unreferenced dual vertices (cubes on the grid's boundary) are kept, as upstream does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reconstruction_service.instantmesh.dmc_tables import (
    AMBIGUITY_TABLE,
    CUBE_EDGES,
    DMC_TABLE,
    NUM_DUAL_VERTICES,
    corner_offset,
)

WEIGHT_SCALE = 0.5  # InstantMesh builds FlexiCubes with weight_scale 0.5
GRID_ROUNDING = 1e5  # upstream rounds the unit grid to 1e-5 before centring it


@dataclass(frozen=True)
class VoxelGrid:
    """(res + 1)³ vertices, vertex (i, j, k) at index (i · (res + 1) + j) · (res + 1) + k, x slowest;
    res³ cubes in the same order; cube corner c is vertex (i, j, k) + corner_offset(c)."""

    res: int
    vertices: torch.Tensor  # (V, 3) float32, centred, scaled
    cubes: torch.Tensor  # (C, 8) long

    @property
    def side(self) -> int:
        return self.res + 1


def voxel_grid(res: int, scale: float, device: torch.device | str = "cpu") -> VoxelGrid:
    axis = torch.arange(res + 1, dtype=torch.float32, device=device) / res
    axis = (torch.round(axis * GRID_ROUNDING) / GRID_ROUNDING - 0.5) * scale
    vertices = torch.cartesian_prod(axis, axis, axis)
    side = res + 1
    cell = torch.arange(res, device=device)
    i, j, k = torch.meshgrid(cell, cell, cell, indexing="ij")
    origin = ((i * side + j) * side + k).reshape(-1, 1)
    steps = torch.tensor(
        [(x * side + y) * side + z for x, y, z in map(corner_offset, range(8))], device=device
    )
    return VoxelGrid(res=res, vertices=vertices, cubes=origin + steps)


def surface_cubes(grid: VoxelGrid, sdf: torch.Tensor) -> torch.Tensor:
    """Ids of the cubes whose corners are not all inside or all outside, ascending."""
    inside = (sdf < 0)[grid.cubes].sum(dim=1)
    return torch.nonzero((inside > 0) & (inside < 8)).squeeze(1)


def _case_ids(grid: VoxelGrid, sdf: torch.Tensor, cubes: torch.Tensor) -> torch.Tensor:
    """Case per surface cube, with FlexiCubes' fix for two ambiguous cubes facing each other."""
    bits = torch.tensor([1 << c for c in range(8)], device=sdf.device)
    cases = ((sdf[grid.cubes[cubes]] < 0).long() * bits).sum(dim=1)
    check = AMBIGUITY_TABLE.to(sdf.device)[cases]
    flagged = check[:, 0] == 1
    problem = torch.zeros(grid.res**3, dtype=torch.bool, device=sdf.device)
    problem[cubes[flagged]] = True
    res = grid.res
    ijk = torch.stack([cubes // (res * res), cubes // res % res, cubes % res], dim=1)
    neighbour = ijk + check[:, 1:4]
    valid = flagged & ((neighbour >= 0) & (neighbour < res)).all(dim=1)
    neighbour_id = (neighbour[:, 0] * res + neighbour[:, 1]) * res + neighbour[:, 2]
    invert = valid & problem[neighbour_id.clamp(0, res**3 - 1)]
    return torch.where(invert, check[:, 4], cases)


def _weighted_crossing(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Where the line from x[:, 0] to x[:, 1] crosses zero, for end values s (N, 2) → (N, 3)."""
    s0, s1 = s[:, 0:1], s[:, 1:2]
    return (x[:, 0] * s1 + x[:, 1] * -s0) / (s1 + -s0)


@torch.no_grad()
def extract(
    grid: VoxelGrid,
    sdf: torch.Tensor,
    positions: torch.Tensor,
    cubes: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mesh of the zero level set: (vertices (N, 3), faces (F, 3) long).

    sdf (V,) per grid vertex, inside < 0; positions (V, 3) the (deformed) grid vertices, read only at
    corners of surface cubes; cubes = surface_cubes(grid, sdf); weights (len(cubes), 21) the raw
    per-cube β (12), α (8), γ (1).
    """
    device = sdf.device
    if len(cubes) == 0:
        return torch.zeros((0, 3), device=device), torch.zeros((0, 3), dtype=torch.long, device=device)
    beta = torch.tanh(weights[:, :12]) * WEIGHT_SCALE + 1
    alpha = torch.tanh(weights[:, 12:20]) * WEIGHT_SCALE + 1
    gamma = torch.sigmoid(weights[:, 20]) * WEIGHT_SCALE + (1 - WEIGHT_SCALE) / 2
    cases = _case_ids(grid, sdf, cubes)

    # Every crossed edge of every surface cube, numbered by its (first, second) vertex pair.
    edge_corners = torch.tensor(CUBE_EDGES, device=device)  # (12, 2)
    ends = grid.cubes[cubes][:, edge_corners]  # (S, 12, 2) vertex ids
    inside = sdf < 0
    crossed = inside[ends[..., 0]] != inside[ends[..., 1]]  # (S, 12)
    keys = ends[..., 0] * len(sdf) + ends[..., 1]
    unique_keys, edge_of, shared_by = torch.unique(keys[crossed], return_inverse=True, return_counts=True)
    edge_ends = torch.stack([unique_keys // len(sdf), unique_keys % len(sdf)], dim=1)  # (E, 2)
    edge_id = torch.full(crossed.shape, -1, dtype=torch.long, device=device)
    edge_id[crossed] = edge_of

    # Dual vertices: cubes ordered by how many they emit (stable), then group by group.
    emitted = NUM_DUAL_VERTICES.to(device)[cases]
    order = torch.sort(emitted, stable=True).indices
    first_vertex = torch.cumsum(emitted[order], 0) - emitted[order]
    groups = DMC_TABLE.to(device)[cases[order]]  # (S, 4, 7) local edges, −1 padded
    vertex = first_vertex.view(-1, 1, 1) + torch.arange(groups.shape[1], device=device).view(1, -1, 1)
    member = groups >= 0
    cube_of = order.view(-1, 1, 1).expand_as(groups)[member]
    local = groups[member]
    vertex_of = vertex.expand_as(groups)[member]

    pair = edge_corners[local]  # the edge's two corners, for their α
    x = positions[edge_ends[edge_id[cube_of, local]]]  # (M, 2, 3)
    s = sdf[edge_ends[edge_id[cube_of, local]]] * alpha[cube_of.unsqueeze(1), pair]
    crossing = _weighted_crossing(x, s)
    b = beta[cube_of, local].unsqueeze(1)
    total = int(emitted.sum())
    beta_sum = torch.zeros((total, 1), device=device).index_add_(0, vertex_of, b)
    dual = torch.zeros((total, 3), device=device).index_add_(0, vertex_of, crossing * b) / beta_sum
    dual_gamma = torch.zeros(total, device=device)
    dual_gamma[vertex_of] = gamma[cube_of]
    dual_of = torch.zeros(crossed.shape, dtype=torch.long, device=device)
    dual_of[cube_of, local] = vertex_of

    # Quads around the crossed edges that 4 surface cubes share, the cubes in ascending order.
    interior = crossed & (shared_by[edge_id.clamp(min=0)] == 4)
    edge_ids, by_edge = torch.sort(edge_id[interior], stable=True)
    quads = dual_of[interior][by_edge].view(-1, 4)
    quad_edges = edge_ids.view(-1, 4)[:, 0]
    flip = sdf[edge_ends[quad_edges, 0]] > 0
    quads = torch.cat([quads[flip][:, [0, 1, 3, 2]], quads[~flip][:, [2, 3, 1, 0]]])
    g = dual_gamma[quads]
    split_02 = g[:, 0] * g[:, 2] > g[:, 1] * g[:, 3]
    faces = torch.where(split_02.view(-1, 1), quads[:, [0, 1, 2, 0, 2, 3]], quads[:, [0, 1, 3, 3, 1, 2]])
    return dual, faces.reshape(-1, 3)
