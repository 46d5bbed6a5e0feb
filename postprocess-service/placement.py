"""Where the finished asset sits: +Y up, origin at its bottom centre (or its centre), real-world size."""

from __future__ import annotations

import numpy as np
import trimesh

from meshforge.schemas import Origin


def place(
    mesh: trimesh.Trimesh, origin: Origin = Origin.bottom, height_m: float | None = None
) -> trimesh.Trimesh:
    """Scale to ``height_m`` metres tall (when given), then move the origin.

    "bottom" puts the bounding box's bottom centre at the origin, so the asset stands on the ground
    plane where a game engine drops it; "center" puts the bounding box's centre there.
    """
    scale = 1.0
    if height_m is not None:
        height = float(mesh.extents[1])
        if height > 0:
            scale = height_m / height
    low, high = mesh.bounds * scale
    anchor = (low + high) / 2.0
    if origin == Origin.bottom:
        anchor[1] = low[1]
    return scaled_and_moved(mesh, scale, -anchor)


def scaled_and_moved(mesh: trimesh.Trimesh, scale: float, offset: np.ndarray) -> trimesh.Trimesh:
    """A copy of ``mesh`` with every vertex at ``vertex * scale + offset`` (``scale`` > 0).

    Written out rather than through ``apply_transform``, which multiplies by a 4×4 matrix through BLAS
    (slow when its threads compete on a busy machine) and transforms cached normals that a uniform
    scale and a move leave as they are.
    """
    moved = mesh.copy()
    moved.vertices = np.asarray(mesh.vertices, dtype=np.float64) * scale + np.asarray(
        offset, dtype=np.float64
    )
    return moved
