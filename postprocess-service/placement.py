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
    placed = mesh.copy()
    if height_m is not None:
        height = float(placed.extents[1])
        if height > 0:
            placed.apply_scale(height_m / height)
    low, high = placed.bounds
    anchor = (low + high) / 2.0
    if origin == Origin.bottom:
        anchor[1] = low[1]
    placed.apply_translation(-np.asarray(anchor))
    return placed
