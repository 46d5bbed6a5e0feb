"""A small numpy software rasteriser, so that offline backends and tests can draw meshes without a GPU.

It follows the canonical camera convention of ``meshforge.geometry.views`` exactly: vertices go through
``Camera.project``, and a pixel belongs to a triangle when the triangle covers the pixel's centre
(``(col + 0.5, row + 0.5)``). The mask is therefore exact and carries no anti-aliasing, which is what a
visual-hull reconstruction needs from the silhouettes.

Work is vectorised over batches of triangles rather than looped per triangle: each triangle expands
into its rows, each row into the run of pixel centres it covers, and ``np.minimum.at`` keeps the
nearest fragment per pixel (the z-buffer). Depth and attributes are interpolated perspective-correctly
(1/z is affine in screen space), which is exact for planar triangles of any size, so a cube's two big
triangles per face need no subdivision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from meshforge.geometry.views import BACKGROUND_RGB, Camera, rotate_points
from meshforge.geometry.visuals import colour_visual, texture_visual

NEAR_DEPTH = 0.05  # triangles with a vertex this close to (or behind) the camera are dropped, not clipped
DEFAULT_RGB: tuple[int, int, int] = (200, 200, 200)  # meshes without colours are drawn light grey
CREASE_ANGLE_DEG = 35.0  # faces meeting at a sharper angle than this keep a hard edge (a cube stays flat)
# Direction *towards* the key light in camera coordinates (x right, y down, z forward): upper-left-front.
# It is deliberately asymmetric so that the three faces of a cube seen from above all differ in brightness.
KEY_LIGHT_CAM = np.array([-0.45, -0.75, -1.0]) / np.linalg.norm([-0.45, -0.75, -1.0])

_EDGE_EPS = 1e-9  # barycentric tolerance: a centre on an edge shared by two triangles is never lost
_CANDIDATES_PER_BATCH = 1 << 20  # bounding-box pixels per batch: bounds temporaries to tens of MB


@dataclass(frozen=True)
class RenderResult:
    rgba: np.ndarray  # (H, W, 4) uint8; RGB composited on the background, alpha 255 on the object, else 0
    mask: np.ndarray  # (H, W) bool, True where the object covers the pixel centre
    depth: np.ndarray  # (H, W) float32 camera-space z, np.inf where empty


@dataclass(frozen=True)
class _Fragments:
    """The nearest surface found at each covered pixel."""

    pixel: np.ndarray  # (P,) flat pixel index, row * size + col
    face: np.ndarray  # (P,) index into mesh.faces
    bary: np.ndarray  # (P, 3) perspective-correct barycentric weights of the face's three corners
    depth: np.ndarray  # (P,) camera-space z


def render_mesh(
    mesh: trimesh.Trimesh,
    camera: Camera,
    *,
    background_rgb: tuple[int, int, int] = BACKGROUND_RGB,
    ambient: float = 0.55,
) -> RenderResult:
    """Draw ``mesh`` as ``camera`` sees it, Lambert-shaded by a key light plus ``ambient`` (0..1)."""
    if not 0.0 <= ambient <= 1.0:
        raise ValueError(f"ambient must lie in [0, 1], got {ambient}")
    size = camera.image_size
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    frags = _rasterize(vertices, faces, camera)

    rgb = np.empty((size * size, 3), dtype=np.uint8)
    rgb[:] = np.asarray(background_rgb, dtype=np.uint8)
    alpha = np.zeros(size * size, dtype=np.uint8)
    depth = np.full(size * size, np.inf, dtype=np.float32)
    if len(frags.pixel):
        base = _fragment_colours(mesh, faces, frags)
        shade = _fragment_shading(vertices, faces, mesh, camera, frags, ambient)
        rgb[frags.pixel] = np.clip(np.rint(base * shade[:, None]), 0, 255).astype(np.uint8)
        alpha[frags.pixel] = 255
        depth[frags.pixel] = frags.depth
    rgba = np.concatenate([rgb, alpha[:, None]], axis=1).reshape(size, size, 4)
    return RenderResult(rgba=rgba, mask=(alpha > 0).reshape(size, size), depth=depth.reshape(size, size))


# --- rasterisation ------------------------------------------------------------------------------------


def _rasterize(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> _Fragments:
    """Z-buffer every face; returns the winning fragment of each covered pixel."""
    size = camera.image_size
    empty = _Fragments(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0))
    if len(faces) == 0 or len(vertices) == 0:
        return empty
    uv, z = camera.project(vertices)
    tri_uv, tri_z = uv[faces], z[faces]  # (F, 3, 2), (F, 3)
    visible = (tri_z > NEAR_DEPTH).all(axis=1) & np.isfinite(tri_uv).all(axis=(1, 2))
    tri_uv = np.where(visible[:, None, None], tri_uv, 0.0)  # dropped faces must not poison the maths below
    planes, area2 = _barycentric_planes(tri_uv)
    visible &= np.abs(area2) > 1e-12

    # Rows whose pixel centres the face's bounding box spans, clipped to the image.
    row_lo = np.clip(np.ceil(_over_corners(np.minimum, tri_uv[:, :, 1]) - 0.5), 0, size).astype(np.int64)
    row_hi = np.clip(np.floor(_over_corners(np.maximum, tri_uv[:, :, 1]) - 0.5), -1, size - 1).astype(
        np.int64
    )
    n_rows = np.where(visible, row_hi - row_lo + 1, 0).clip(min=0)
    width = np.clip(np.ptp(tri_uv[:, :, 0], axis=1) + 1, 0, size).astype(np.int64)
    face_ids = np.flatnonzero(n_rows > 0)

    zbuf = np.full(size * size, np.inf)
    face_buf = np.full(size * size, -1, dtype=np.int64)
    bary_buf = np.zeros((size * size, 3))
    for batch in _batches(face_ids, n_rows[face_ids] * width[face_ids]):
        spans = _scan_batch(batch, row_lo[batch], n_rows[batch], planes[batch], 1.0 / tri_z[batch], size)
        # Expand spans into fragments; only depth is computed for all of them.
        counts = spans.col_hi - spans.col_lo + 1
        span = np.repeat(np.arange(len(counts)), counts)
        col = spans.col_lo[span] + np.arange(len(span)) - np.repeat(np.cumsum(counts) - counts, counts)
        x = col + 0.5
        pixel = spans.row[span] * size + col
        depth = 1.0 / (spans.inv_depth_slope[span] * x + spans.inv_depth_offset[span])
        win = _nearest_fragments(pixel, depth, zbuf)
        # Barycentrics only for the fragments that survive the depth test.
        weighted = spans.slope[span[win]] * x[win, None] + spans.offset[span[win]]
        face_buf[pixel[win]] = spans.face[span[win]]
        bary_buf[pixel[win]] = weighted / weighted.sum(axis=1, keepdims=True)

    covered = np.flatnonzero(face_buf >= 0)
    return _Fragments(covered, face_buf[covered], bary_buf[covered], zbuf[covered])


def _nearest_fragments(pixel: np.ndarray, depth: np.ndarray, zbuf: np.ndarray) -> np.ndarray:
    """Update ``zbuf`` in place; return the indices of fragments now nearest at their pixel, one per pixel.

    Exact depth ties (a centre on an edge shared by two faces) go to the later fragment, so the result
    never depends on how numpy orders repeated writes.
    """
    np.minimum.at(zbuf, pixel, depth)
    nearest = np.flatnonzero(depth == zbuf[pixel])
    pick = np.full(len(zbuf), -1, dtype=np.int64)
    np.maximum.at(pick, pixel[nearest], nearest)
    kept: np.ndarray = nearest[pick[pixel[nearest]] == nearest]
    return kept


def _barycentric_planes(tri_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per face, (A, B, C) of each corner so that its screen barycentric is A*x + B*y + C; shape (F, 3, 3).

    Also returns twice the signed screen area; the planes of degenerate faces are left at zero.
    """
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    safe = np.where(np.abs(area2) > 1e-12, area2, np.inf)
    planes = [
        np.stack([p[:, 1] - q[:, 1], q[:, 0] - p[:, 0], p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]], axis=1)
        for p, q in ((b, c), (c, a), (a, b))  # corner i is weighted by the edge opposite it
    ]
    return np.stack(planes, axis=1) / safe[:, None, None], area2


def _batches(face_ids: np.ndarray, counts: np.ndarray) -> Iterator[np.ndarray]:
    """Split faces into consecutive runs of about ``_CANDIDATES_PER_BATCH`` bounding-box pixels."""
    if len(face_ids) == 0:
        return
    starts = np.cumsum(counts) - counts
    batch_of = starts // _CANDIDATES_PER_BATCH
    yield from np.split(face_ids, np.flatnonzero(np.diff(batch_of)) + 1)


@dataclass(frozen=True)
class _Spans:
    """Runs of covered pixel centres, one per (face, row), with planes for perspective-correct weights.

    On a row, barycentric / z = slope * x + offset for each corner (1/z and attribute/z are affine in
    screen space); their sums over the corners give 1 / depth.
    """

    face: np.ndarray  # (S,)
    row: np.ndarray  # (S,)
    col_lo: np.ndarray  # (S,) first covered column
    col_hi: np.ndarray  # (S,) last covered column, col_lo - 1 when none
    slope: np.ndarray  # (S, 3)
    offset: np.ndarray  # (S, 3)

    @property
    def inv_depth_slope(self) -> np.ndarray:
        return _over_corners(np.add, self.slope)

    @property
    def inv_depth_offset(self) -> np.ndarray:
        return _over_corners(np.add, self.offset)


def _scan_batch(
    faces: np.ndarray,
    row_lo: np.ndarray,
    n_rows: np.ndarray,
    planes: np.ndarray,
    inv_z: np.ndarray,
    size: int,
) -> _Spans:
    """Expand a batch of faces into their rows and find the covered centres on each.

    On a row every screen barycentric is affine in x, so the covered run follows from three half-line
    bounds: only covered pixels ever become fragments.
    """
    local = np.repeat(np.arange(len(faces)), n_rows)  # one entry per (face, row)
    row = row_lo[local] + np.arange(len(local)) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    coeff = planes[local]  # (S, 3, 3): A, B, C of each corner
    slope = coeff[:, :, 0]
    offset = coeff[:, :, 1] * (row + 0.5)[:, None] + coeff[:, :, 2]  # barycentric = slope * x + offset
    col_lo, col_hi = _covered_columns(slope, offset, size)
    weight = inv_z[local]  # (S, 3)
    return _Spans(faces[local], row, col_lo, np.maximum(col_hi, col_lo - 1), slope * weight, offset * weight)


def _covered_columns(slope: np.ndarray, offset: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last column whose centre x satisfies slope * x + offset >= -eps for all three corners."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (-_EDGE_EPS - offset) / slope
    flat_ok = offset >= -_EDGE_EPS  # where slope == 0 the row is either wholly inside or wholly outside
    lower = _over_corners(
        np.maximum, np.where(slope > 0, bound, np.where((slope == 0) & ~flat_ok, np.inf, -np.inf))
    )
    upper = _over_corners(np.minimum, np.where(slope < 0, bound, np.inf))
    col_lo = np.ceil(np.clip(lower - 0.5, -1, size)).astype(np.int64).clip(0, None)
    col_hi = np.floor(np.clip(upper - 0.5, -1, size)).astype(np.int64).clip(None, size - 1)
    return col_lo, col_hi


def _over_corners(combine: np.ufunc, values: np.ndarray) -> np.ndarray:
    """``combine`` over the three corners (the last axis) of ``values``: written out, because numpy's
    reductions along a length-3 axis take several times as long as two elementwise operations."""
    combined: np.ndarray = combine(combine(values[..., 0], values[..., 1]), values[..., 2])
    return combined


# --- colour and shading -------------------------------------------------------------------------------


def _fragment_colours(mesh: trimesh.Trimesh, faces: np.ndarray, frags: _Fragments) -> np.ndarray:
    """Unshaded RGB (P, 3) floats: interpolated vertex colours, face colours, or the default grey."""
    vertex_rgb, face_rgb = _surface_colours(mesh)
    rgb: np.ndarray
    if vertex_rgb is not None:
        rgb = np.einsum("pk,pkc->pc", frags.bary, vertex_rgb[faces[frags.face]])
        return rgb
    if face_rgb is not None:
        rgb = face_rgb[frags.face]
        return rgb
    return np.broadcast_to(np.asarray(DEFAULT_RGB, dtype=np.float64), (len(frags.face), 3))


def _surface_colours(mesh: trimesh.Trimesh) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(vertex RGB (V, 3), face RGB (F, 3)) as floats; at most one is set, neither for an uncoloured mesh."""
    kind = getattr(mesh.visual, "kind", None)
    if kind == "vertex":
        return np.asarray(colour_visual(mesh).vertex_colors, dtype=np.float64)[:, :3], None
    if kind == "face":
        return None, np.asarray(colour_visual(mesh).face_colors, dtype=np.float64)[:, :3]
    if kind == "texture":
        # Sample the texture at the vertices: coarse, but good enough for previews. Without UVs only
        # the material's main colour is known.
        visual = texture_visual(mesh)
        n_vertices = len(mesh.vertices)
        if visual.uv is not None and len(visual.uv) == n_vertices:
            # (trimesh leaves Material.to_color unannotated.)
            colours = visual.material.to_color(visual.uv)  # type: ignore[no-untyped-call]
            rgb = np.asarray(colours, dtype=np.float64)
        else:
            rgb = np.asarray(getattr(visual.material, "main_color", DEFAULT_RGB), dtype=np.float64)
        return np.broadcast_to(rgb[..., :3], (n_vertices, 3)), None
    return None, None


def _fragment_shading(
    vertices: np.ndarray,
    faces: np.ndarray,
    mesh: trimesh.Trimesh,
    camera: Camera,
    frags: _Fragments,
    ambient: float,
) -> np.ndarray:
    """Lambert factor (P,) in [ambient, 1]; lighting is two-sided so open or flipped meshes still read."""
    corners = corner_normals(mesh)[frags.face]  # (P, 3, 3) world
    normal = rotate_points(np.einsum("pk,pkc->pc", frags.bary, corners), camera.rotation)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)

    tri = vertices[faces]
    face_normal = rotate_points(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), camera.rotation)
    centroid = camera.to_camera(tri.mean(axis=1))
    back_facing = np.einsum("fc,fc->f", face_normal, centroid) > 0  # the camera sees the face's back
    normal[back_facing[frags.face]] *= -1.0

    diffuse = np.clip(np.einsum("pc,c->p", normal, KEY_LIGHT_CAM), 0.0, 1.0)
    shading: np.ndarray = ambient + (1.0 - ambient) * diffuse
    return shading


def corner_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """Unit normal at each face corner, shape (F, 3, 3): smooth across soft edges, hard across creases.

    Corners around a vertex are grouped when their faces share an edge that bends less than
    ``CREASE_ANGLE_DEG``; each group gets the area-weighted mean of its faces' normals. So a sphere or
    the side of a cylinder shades smoothly while a cube, or a cylinder's rim, keeps its sharp edges.
    """
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    tri = np.asarray(mesh.vertices, dtype=np.float64)[faces]
    weighted = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = twice the area
    n_corners = 3 * len(faces)
    soft = mesh.face_adjacency_angles < np.radians(CREASE_ANGLE_DEG)
    pairs, edges = mesh.face_adjacency[soft], mesh.face_adjacency_edges[soft]
    rows = np.concatenate([_corner_index(faces, pairs[:, 0], edges[:, k]) for k in (0, 1)])
    cols = np.concatenate([_corner_index(faces, pairs[:, 1], edges[:, k]) for k in (0, 1)])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_corners, n_corners))
    n_groups, group = connected_components(graph, directed=False)

    corner_weighted = np.repeat(weighted, 3, axis=0)
    sums = np.stack([np.bincount(group, corner_weighted[:, c], minlength=n_groups) for c in range(3)], 1)
    normals = sums[group]
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    unit: np.ndarray = (normals / np.maximum(length, 1e-300)).reshape(-1, 3, 3)
    return unit


def _corner_index(faces: np.ndarray, face: np.ndarray, vertex: np.ndarray) -> np.ndarray:
    """Flat corner index (3 * face + k) of ``vertex`` within ``face``."""
    index: np.ndarray = 3 * face + np.argmax(faces[face] == vertex[:, None], axis=1)
    return index
