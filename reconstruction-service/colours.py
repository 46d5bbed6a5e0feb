"""Vertex colours projected from the views onto a reconstructed mesh.

Each vertex takes a weighted mean of the colours the views show at its projection. A view's weight is
how frontally it sees the vertex, ``max(0, n·(eye−p)/|eye−p|)²``, so grazing views (where a pixel spans
a long stretch of surface, and where outlines mix in background) count little. A view counts only if
the vertex is not hidden behind another part of the mesh from that camera; that is decided with a
coarse depth buffer of the mesh's own vertices, which is cheap and needs no triangle rasteriser.
Pixels just inside the outline are trusted less than interior ones because photos blend them with the
background. Vertices no view sees (under a base, inside a crevice) take the colour of the nearest
vertex, along the surface, that some view does see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from meshforge.cancellation import check_cancelled
from meshforge.geometry.sampling import bilinear
from meshforge.geometry.views import Camera

# Weight of a pixel on the silhouette's one-pixel rim, relative to interior pixels.
OUTLINE_PIXEL_WEIGHT = 0.1
# A vertex counts as visible if it is at most this many voxels behind the nearest surface in its cell;
# it absorbs the depth change across a cell on slanted surfaces.
VISIBILITY_TOLERANCE_VOXELS = 3.0
SEAM_SMOOTHING_ROUNDS = 8  # neighbour averaging passes over filled-in (unseen) vertices


@dataclass(frozen=True)
class ViewImage:
    """One view ready for colour projection: its camera, RGB pixels (H, W, 3) uint8 and silhouette."""

    camera: Camera
    rgb: np.ndarray
    mask: np.ndarray


def project_vertex_colours(
    mesh: trimesh.Trimesh,
    views: Sequence[ViewImage],
    *,
    voxel_size: float,
    on_view: Callable[[], None] | None = None,
) -> np.ndarray:
    """Per-vertex RGBA uint8 colours (V, 4) for ``mesh`` from ``views``.

    ``voxel_size`` is the spacing of the grid the mesh came from; it sets the depth buffer's cell size
    and the visibility tolerance. ``on_view`` is called after each view's share (the job's progress).
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    colour_sum = np.zeros((len(vertices), 3))
    weight_sum = np.zeros(len(vertices))
    for view in views:
        check_cancelled()  # a cancelled job stops between views (meshforge.cancellation)
        colours, weights = _view_contribution(vertices, normals, view, voxel_size)
        colour_sum += colours * weights[:, None]
        weight_sum += weights
        if on_view is not None:
            on_view()
    seen = weight_sum > 1e-6
    colours = np.zeros((len(vertices), 3))
    colours[seen] = colour_sum[seen] / weight_sum[seen, None]
    colours = _fill_unseen(mesh, colours, seen)
    alpha = np.full((len(vertices), 1), 255.0)
    return np.clip(np.round(np.hstack([colours, alpha])), 0, 255).astype(np.uint8)


def _view_contribution(
    vertices: np.ndarray, normals: np.ndarray, view: ViewImage, voxel_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """The colour each vertex shows in ``view`` (V, 3) and how much that view counts (V,)."""
    camera = view.camera
    uv, depth = camera.project(vertices)
    to_eye = camera.eye - vertices
    to_eye /= np.linalg.norm(to_eye, axis=1, keepdims=True)
    frontal = np.maximum(0.0, np.einsum("ij,ij->i", normals, to_eye)) ** 2
    visible = _visible(uv, depth, camera, voxel_size)
    colours, coverage = _sample_inside_silhouette(view, uv)
    return colours, frontal * visible * coverage


def _visible(uv: np.ndarray, depth: np.ndarray, camera: Camera, voxel_size: float) -> np.ndarray:
    """Whether each vertex is the nearest surface along its ray, from a depth buffer of the vertices.

    Cells are about one voxel's footprint wide so that nearly every cell on a surface holds a vertex;
    a 3×3 minimum filter closes the remaining gaps, so a surface behind never shows through.
    """
    cell_px = max(1.0, voxel_size * camera.focal_px / float(np.median(depth)))
    cells_across = int(np.ceil(camera.image_size / cell_px))
    cells = np.floor(uv / cell_px).astype(np.int64)
    across = (cells >= 0) & (cells < cells_across)
    on_image = across[:, 0] & across[:, 1] & (depth > 0)
    flat = cells[:, 1] * cells_across + cells[:, 0]
    buffer = np.full(cells_across * cells_across, np.inf)
    np.minimum.at(buffer, flat[on_image], depth[on_image])
    buffer = ndimage.minimum_filter(buffer.reshape(cells_across, cells_across), size=3).ravel()
    nearest = np.full(len(depth), -np.inf)
    nearest[on_image] = buffer[flat[on_image]]
    return on_image & (depth <= nearest + VISIBILITY_TOLERANCE_VOXELS * voxel_size)


def _sample_inside_silhouette(view: ViewImage, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear colours weighted towards silhouette pixels, and the share of such pixels (0–1).

    Sampling colour × weight and weight separately and dividing keeps background pixels out of the mean
    at the outline; the weight share then tells how much of the sample was object at all.
    """
    interior = ndimage.binary_erosion(view.mask, border_value=1)
    weight = np.where(interior, 1.0, np.where(view.mask, OUTLINE_PIXEL_WEIGHT, 0.0)).astype(np.float32)
    # Colour × weight in channels 0-2 and the weight in 3, read with one set of bilinear weights.
    weighted = np.concatenate([view.rgb * weight[:, :, None], weight[:, :, None]], axis=2)
    # Pixel centres sit at +0.5.
    sampled = bilinear(weighted, uv[:, 1] - 0.5, uv[:, 0] - 0.5, outside="zero").astype(np.float64)
    colours, coverage = sampled[:, :3], sampled[:, 3]
    safe = np.maximum(coverage, 1e-6)
    return colours / safe[:, None], np.clip(coverage, 0.0, 1.0)


def _fill_unseen(mesh: trimesh.Trimesh, colours: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Give unseen vertices the colour of the nearest seen vertex along the surface, then soften seams.

    One multi-source Dijkstra run finds every vertex's nearest seen vertex, however wide the unseen
    patch (a base no camera sees); a few rounds of neighbour averaging on the unseen vertices then
    blur the seams where two such nearest sources meet.
    """
    if seen.all():
        return colours
    if not seen.any():
        return np.full_like(colours, 128.0)
    edges = np.asarray(mesh.edges_unique)
    vertices = np.asarray(mesh.vertices)
    lengths = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    count = len(vertices)
    graph = sparse.coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(count, count)).tocsr()
    _, _, sources = csgraph.dijkstra(
        graph, directed=False, indices=np.flatnonzero(seen), min_only=True, return_predecessors=True
    )
    filled = colours.copy()
    reached = ~seen & (sources >= 0)
    filled[reached] = colours[sources[reached]]
    filled[~seen & ~reached] = colours[seen].mean(axis=0)  # islands no view saw at all
    adjacency = (graph > 0).astype(np.float64)
    adjacency = adjacency + adjacency.T
    degree = np.maximum(np.asarray(adjacency.sum(axis=1)).ravel(), 1.0)
    for _ in range(SEAM_SMOOTHING_ROUNDS):
        filled[~seen] = (adjacency @ filled)[~seen] / degree[~seen, None]
    return filled
