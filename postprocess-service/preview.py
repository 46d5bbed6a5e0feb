"""A preview image of every finished asset, drawn headless with meshforge's own rasterizer."""

from __future__ import annotations

import trimesh
from PIL import Image

from meshforge.geometry.raster import render_mesh
from meshforge.geometry.views import OBJECT_EXTENT, CanonicalView, camera_for
from meshforge.images import encode_png
from postprocess_service.placement import scaled_and_moved

# Three-quarter view from the front right and a little above: shows front, side and top at once.
PREVIEW_VIEW = CanonicalView("preview", azimuth_deg=35.0, elevation_deg=25.0)


def render_preview(mesh: trimesh.Trimesh, size: int = 512) -> bytes:
    """PNG bytes of the mesh, framed as the canonical cameras frame objects, on the neutral background."""
    longest = float(mesh.extents.max())
    scale = OBJECT_EXTENT / longest if longest > 0 else 1.0
    framed = scaled_and_moved(mesh, scale, -mesh.bounds.mean(axis=0) * scale)
    rgba = render_mesh(framed, camera_for(PREVIEW_VIEW, size)).rgba
    # Not optimize=True: it tries every filter at the highest level, ten times as long (0.2 s at 512²)
    # for a file about 6% smaller.
    return encode_png(Image.fromarray(rgba[..., :3]))
