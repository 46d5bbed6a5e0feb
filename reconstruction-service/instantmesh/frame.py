"""InstantMesh's frame → the canonical one (docs/views.md: +Y up, front +Z, right +X).

InstantMesh's world is z-up, and its camera at azimuth 0 (elevation 0) sits on +x looking at the
origin: that is the input view Zero123++ was conditioned on, whose six views lie at azimuths 30°…330°
from it. So the object's front (the side the input image shows) faces +x, up is +z, and the input image's
right is the camera's x axis, up × backward = z × x = +y. Azimuths grow from +x toward +y, from the front
toward the image's right, as the canonical azimuths grow from +Z toward +X. Hence

    canonical (X, Y, Z) = InstantMesh (y, z, x)

a cyclic permutation of the axes, a proper rotation (determinant +1): the winding is kept. (upstream's
run.py writes OBJ files with z negated and the winding reversed instead; that is its file convention, not
the model's frame.) This is TripoSR's mapping too: both place the input camera on +x with +z up.
"""

from __future__ import annotations

import numpy as np

INSTANTMESH_TO_CANONICAL = np.array(
    [
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
    ]
)


def to_canonical(vertices: np.ndarray) -> np.ndarray:
    """(N, 3) InstantMesh coordinates → canonical ones (rotation only; the backend scales and centres)."""
    return vertices @ INSTANTMESH_TO_CANONICAL.T
