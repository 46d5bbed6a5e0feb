"""The hull field's shortcuts (reconstruction_service.carving): deciding blocks without sampling them
must give exactly the field that sampling every voxel gives."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from meshforge.geometry.raster import render_mesh
from meshforge.geometry.views import VIEW_SETS, camera_for
from reconstruction_service.carving import (
    CLAMP_VOXELS,
    _min_over_views,
    hull_field,
    silhouette_view,
    thicken_thin_parts,
)
from reconstruction_service.visual_hull import _fine_grid


def _views_of(mesh: trimesh.Trimesh, size: int = 128) -> list:
    views = VIEW_SETS[8]
    prepared = [silhouette_view(render_mesh(mesh, camera_for(v, size)).rgba, v) for v in views]
    return prepared


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("box", lambda: trimesh.creation.box(extents=(1.0, 0.6, 0.8))),
        ("torus", lambda: trimesh.creation.torus(0.35, 0.12)),
        # Large enough that its silhouettes run off the image edges, where the field jumps.
        ("box cut by the frame", lambda: trimesh.creation.box(extents=(1.75, 1.0, 1.4))),
    ],
)
def test_hull_field_equals_sampling_every_voxel(name: str, make: object) -> None:
    mesh = make()  # type: ignore[operator]
    mesh.visual.vertex_colors = (200, 40, 40, 255)
    prepared = _views_of(mesh)
    grid = _fine_grid(prepared, 48)
    views = [thicken_thin_parts(view, grid.spacing) for view in prepared]
    clamp = CLAMP_VOXELS * grid.spacing
    every_voxel = np.minimum(_min_over_views(views, grid.all_centres(), floor=-clamp), np.float32(clamp))
    assert np.array_equal(hull_field(views, grid), every_voxel.reshape(grid.shape)), name
