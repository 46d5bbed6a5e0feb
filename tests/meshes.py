"""Measuring meshes in tests: shape, colour and distance to a known truth."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from meshforge.geometry.colour import linear_to_srgb
from meshforge.geometry.raster import render_mesh
from meshforge.geometry.views import OBJECT_EXTENT, camera_for, view_set


def load(path: Path) -> trimesh.Trimesh:
    """The asset as one welded mesh with sRGB vertex colours, whether it carries a texture or COLOR_0."""
    mesh = trimesh.load(path, force="mesh")
    if mesh.visual.kind == "texture":
        mesh.visual = mesh.visual.to_color()  # samples the (sRGB) texture at every vertex's UV
    elif path.suffix == ".glb" and mesh.visual.kind == "vertex":  # glTF's COLOR_0 is linear light
        mesh.visual.vertex_colors = linear_to_srgb(mesh.visual.vertex_colors)
    # Textured meshes are split along UV seams; weld them to judge the surface itself.
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    return mesh


def normalised(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centred on its bounding box, longest side 1: compares shapes whatever their placement and scale."""
    out = mesh.copy()
    out.apply_translation(-out.bounds.mean(axis=0))
    out.apply_scale(1.0 / out.extents.max())
    return out


def mean_colour(mesh: trimesh.Trimesh) -> np.ndarray:
    return np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[:, :3].mean(axis=0)


def box_fill(mesh: trimesh.Trimesh) -> float:
    """Volume over bounding-box volume: 1 for a box, π/6 ≈ 0.52 for a sphere."""
    return float(mesh.volume / np.prod(mesh.extents))


def radial_spread(mesh: trimesh.Trimesh) -> float:
    """Standard deviation over mean of the distances of surface points from the centre (0 for a sphere)."""
    points, _ = trimesh.sample.sample_surface(mesh, 4000, seed=1)
    radii = np.linalg.norm(points - mesh.bounds.mean(axis=0), axis=1)
    return float(radii.std() / radii.mean())


def chamfer(a: trimesh.Trimesh, b: trimesh.Trimesh, samples: int = 5000) -> float:
    """Mean of the two directed mean nearest-surface distances (symmetric Chamfer, L1 form)."""
    from scipy.spatial import cKDTree

    pa, _ = trimesh.sample.sample_surface(a, samples, seed=2)
    pb, _ = trimesh.sample.sample_surface(b, samples, seed=3)
    return float((cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean()) / 2)


def coloured_sphere() -> trimesh.Trimesh:
    """An icosphere whose vertex colours vary smoothly with position: every vertex differs."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    rgb = np.clip((mesh.vertices + 0.5) * 255, 0, 255)
    colours = np.column_stack([rgb, np.full(len(mesh.vertices), 255)]).astype(np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colours)
    return mesh


def stacked_boxes() -> trimesh.Trimesh:
    """A known, non-symmetric object: a wide base with a smaller block on top, off-centre, in two colours."""
    base = trimesh.creation.box(extents=(1.0, 0.35, 0.6))
    base.visual.vertex_colors = (200, 60, 40, 255)
    top = trimesh.creation.box(extents=(0.35, 0.5, 0.35))
    top.apply_translation((0.25, 0.425, 0.0))
    top.visual.vertex_colors = (40, 90, 200, 255)
    mesh = trimesh.util.concatenate([base, top])
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(OBJECT_EXTENT / mesh.extents.max())
    return mesh


def canonical_photos(mesh: trimesh.Trimesh, count: int, size: int = 384) -> list[bytes]:
    """PNG bytes of the canonical views, RGB only (no alpha), as photos on a plain background would be."""
    photos = []
    for view in view_set(count):
        rgba = render_mesh(mesh, camera_for(view, size)).rgba
        buffer = io.BytesIO()
        Image.fromarray(rgba[..., :3]).save(buffer, format="PNG")
        photos.append(buffer.getvalue())
    return photos
