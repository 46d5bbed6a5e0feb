"""Closing holes, so the asset is watertight (3D printing, physics colliders and booleans need it).

Each hole is a loop of boundary edges (edges with one face). It is closed with a fan of triangles
around a new vertex at the loop's centroid, wound to agree with the faces around it, and coloured
with the loop's mean colour. A fan suits the small, roughly planar holes that reconstruction and
decimation leave; it is not meant to rebuild missing parts of an object.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import trimesh
from numpy.typing import NDArray
from trimesh.visual import ColorVisuals

from meshforge.geometry.visuals import colour_visual


def fill_holes(mesh: trimesh.Trimesh) -> int:
    """Close every boundary loop of ``mesh`` in place; returns how many holes were filled."""
    loops = boundary_loops(mesh)
    if not loops:
        return 0
    colours = _vertex_colours(mesh)
    vertices: list[np.ndarray] = [mesh.vertices]
    faces: list[np.ndarray] = [mesh.faces]
    new_colours = []
    next_index = len(mesh.vertices)
    for loop in loops:
        vertices.append(mesh.vertices[loop].mean(axis=0, keepdims=True))
        # The faces beside the hole use the edge a→b, so the new face must use b→a.
        faces.append(np.column_stack([np.roll(loop, -1), loop, np.full(len(loop), next_index)]))
        if colours is not None:
            new_colours.append(colours[loop].mean(axis=0, keepdims=True))
        next_index += 1
    filled = trimesh.Trimesh(np.vstack(vertices), np.vstack(faces), process=False)
    if colours is not None:
        colour_visual(filled).vertex_colors = np.vstack([colours, *new_colours]).round().astype(np.uint8)
    mesh.vertices, mesh.faces, mesh.visual = filled.vertices, filled.faces, filled.visual
    return len(loops)


def boundary_loops(mesh: trimesh.Trimesh) -> list[NDArray[np.int64]]:
    """Vertex indices of each closed loop of boundary edges, in the faces' winding order."""
    directed = mesh.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    _, inverse, counts = np.unique(np.sort(directed, axis=1), axis=0, return_inverse=True, return_counts=True)
    boundary = directed[counts[inverse.reshape(-1)] == 1]
    # A vertex where two holes touch has two outgoing boundary edges: keep them all.
    outgoing: dict[int, list[int]] = defaultdict(list)
    for start, end in boundary.tolist():
        outgoing[start].append(end)
    loops: list[NDArray[np.int64]] = []
    while outgoing:
        start = next(iter(outgoing))
        loop, current = [start], _take(outgoing, start)
        while current != start and current in outgoing:
            loop.append(current)
            current = _take(outgoing, current)
        if current == start and len(loop) >= 3:  # open chains (non-manifold rims) are left alone
            loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def _take(outgoing: dict[int, list[int]], vertex: int) -> int:
    ends = outgoing[vertex]
    end = ends.pop()
    if not ends:
        del outgoing[vertex]
    return end


def _vertex_colours(mesh: trimesh.Trimesh) -> NDArray[np.float64] | None:
    visual = mesh.visual
    if not isinstance(visual, ColorVisuals) or visual.kind != "vertex":
        return None
    return np.asarray(visual.vertex_colors, dtype=np.float64)
