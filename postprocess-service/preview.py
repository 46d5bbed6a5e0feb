"""A preview image of every finished asset, drawn headless with meshforge's own rasterizer."""

from __future__ import annotations

import trimesh
from PIL import Image

from meshforge.geometry.raster import render_mesh
from meshforge.geometry.views import OBJECT_EXTENT, CanonicalView, camera_for
from meshforge.images import encode_png

# Three-quarter view from the front right and a little above: shows front, side and top at once.
PREVIEW_VIEW = CanonicalView("preview", azimuth_deg=35.0, elevation_deg=25.0)


def render_preview(mesh: trimesh.Trimesh, size: int = 512) -> bytes:
    """PNG bytes of the mesh, framed as the canonical cameras frame objects, on the neutral background."""
    framed = mesh.copy()
    framed.apply_translation(-framed.bounds.mean(axis=0))
    longest = float(framed.extents.max())
    if longest > 0:
        framed.apply_scale(OBJECT_EXTENT / longest)
    rgba = render_mesh(framed, camera_for(PREVIEW_VIEW, size)).rgba
    return encode_png(Image.fromarray(rgba[..., :3]), optimize=True)
