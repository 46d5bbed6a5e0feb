"""Baking per-vertex colours into a texture over UV triangles (the rasteriser behind ``texturing``).

Texel (row r, column c) has its centre at (c + ½, r + ½) in texel units, y pointing down the rows.
On one row of one triangle every barycentric weight is affine in x, so the texel centres a triangle
covers form one run per row, found from three half-line bounds, and the interpolated colour is affine
along the run too: only covered texels are visited, and an inside texel costs a multiply-add per channel.

Texels just outside a chart (within ``BAND_TEXELS`` of one of its triangles) take that triangle's edge
colour (its barycentric weights clamped onto it), so bilinear reads along the chart's border stay true.
Only triangles with a corner on a chart border can reach such texels, so only those are widened, and a
band texel never overwrites an inside one. The charts are then grown outwards by a gutter so that
mip-mapped sampling near a seam never reads the empty background.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import distance_transform_edt

from meshforge.cancellation import check_cancelled

BAND_TEXELS = 1.0  # texels this close to a triangle take its (clamped) colour: bilinear reads them
_EDGE_EPS = 1e-9  # a texel centre on an edge shared by two triangles belongs to both, never to neither
_RUNS_PER_BATCH = 1 << 17  # (triangle, row) runs set up at once: bounds the set-up's memory
_CHUNK_TEXELS = 1 << 20  # texels coloured at once: bounds the colouring's memory
_GUTTER_TILE = 512  # texels a side padded at once: a safe point between tiles


@dataclass(frozen=True)
class _Runs:
    """One run per (triangle, texel row): barycentric weight = slope * x + offset along the row."""

    face: NDArray[np.int64]  # (S,)
    row: NDArray[np.int64]  # (S,)
    slope: NDArray[np.float64]  # (S, 3)
    offset: NDArray[np.float64]  # (S, 3)
    # The columns of the triangle's bounding box, widened by the band where it has one and clipped to
    # the texture: the band of a sliver's sharp corner would otherwise reach far beyond the sliver.
    box_first: NDArray[np.int64]  # (S,)
    box_last: NDArray[np.int64]  # (S,)

    def subset(self, keep: NDArray[np.bool_]) -> _Runs:
        return _Runs(*(getattr(self, f.name)[keep] for f in fields(self)))

    def columns(self, bound: NDArray[np.float64] | float, size: int) -> tuple[NDArray[np.int64], ...]:
        """(first, last) column whose centre has every weight >= ``bound``, within the run's box;
        first > last when none."""
        with np.errstate(divide="ignore", invalid="ignore"):
            limit = (bound - self.offset) / self.slope
        flat_ok = self.offset >= bound  # where slope == 0 the whole row is either in or out
        lower = np.where(self.slope > 0, limit, np.where((self.slope == 0) & ~flat_ok, np.inf, -np.inf))
        upper = np.where(self.slope < 0, limit, np.inf)
        # Over the three corners written out: numpy's reductions along a length-3 axis are slow.
        lowest = np.maximum(np.maximum(lower[:, 0], lower[:, 1]), lower[:, 2])
        highest = np.minimum(np.minimum(upper[:, 0], upper[:, 1]), upper[:, 2])
        first = np.ceil(np.clip(lowest - 0.5, -1, size)).astype(np.int64)
        last = np.floor(np.clip(highest - 0.5, -1, size)).astype(np.int64)
        return np.maximum(first, self.box_first), np.minimum(last, self.box_last)


def bake_texture(
    uv: NDArray[np.float64], faces: NDArray[np.int64], colours: NDArray[np.uint8], size: int
) -> NDArray[np.uint8]:
    """A size×size×3 image (row 0 at v = 1) of the per-vertex RGB colours spread over the UV triangles."""
    corners = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]])[faces] * size  # (F, 3, 2) texel units
    planes, doubled_area = _barycentric_planes(corners)
    opposite = np.linalg.norm(corners[:, [2, 0, 1]] - corners[:, [1, 2, 0]], axis=2)
    heights = np.abs(doubled_area)[:, None] / np.maximum(opposite, 1e-12)  # corner → opposite edge
    widened = _touches_border(faces)
    # Weight of corner i at BAND_TEXELS beyond the edge opposite it: the band's bound, per corner.
    band_bound = -BAND_TEXELS / np.maximum(heights, 1e-12)
    reach = np.where(widened, BAND_TEXELS, 0.0)
    smallest = np.minimum(np.minimum(corners[:, 0], corners[:, 1]), corners[:, 2])  # (F, 2)
    largest = np.maximum(np.maximum(corners[:, 0], corners[:, 1]), corners[:, 2])
    low = np.clip(np.ceil(smallest - reach[:, None] - 0.5), 0, size).astype(np.int64)
    high = np.clip(np.floor(largest + reach[:, None] - 0.5), -1, size - 1).astype(np.int64)
    rows = np.maximum(high[:, 1] - low[:, 1] + 1, 0)
    rows[np.abs(doubled_area) <= 1e-12] = 0  # degenerate faces (xatlas parks them on a point) cover nothing
    face_colours = colours[faces].astype(np.float64)  # (F, 3 corners, 3 channels)

    rgb = np.zeros((size * size, 3), np.uint8)
    inside = np.zeros(size * size, bool)
    filled = np.zeros(size * size, bool)
    for batch in _batches(rows):
        runs = _row_runs(batch, low[batch], high[batch], rows[batch], planes)
        _paint_inside(rgb, inside, runs, face_colours, size)
        border = runs.subset(widened[runs.face])
        _paint_band(rgb, inside, filled, border, band_bound[border.face], face_colours, size)
    filled |= inside
    return pad_gutters(rgb.reshape(size, size, 3), filled.reshape(size, size), gutter_texels(size))


def pad_gutters(texels: NDArray[np.uint8], filled: NDArray[np.bool_], width: int) -> NDArray[np.uint8]:
    """Empty texels within ``width`` of a filled one copy the nearest; the rest get the mean colour.

    Done tile by tile, each tile seeing ``width`` texels of its neighbours: any filled texel within
    ``width`` of a tile's texel lies in that window, so the result is the whole image's, and a 4096²
    texture (2.5 s in one piece) gets a safe point between tiles and skips its empty and full ones.
    """
    if not filled.any():
        return texels
    padded = texels.copy()
    mean = np.round(texels[filled].mean(axis=0)).astype(np.uint8)
    height, across = filled.shape
    for top in range(0, height, _GUTTER_TILE):
        for left in range(0, across, _GUTTER_TILE):
            check_cancelled()  # between tiles: a cancelled job stops padding here
            _pad_tile(texels, filled, padded, mean, width, (top, left))
    return padded


def _pad_tile(
    texels: NDArray[np.uint8],
    filled: NDArray[np.bool_],
    padded: NDArray[np.uint8],
    mean: NDArray[np.uint8],
    width: int,
    corner: tuple[int, int],
) -> None:
    height, across = filled.shape
    top, left = corner
    bottom, right = min(top + _GUTTER_TILE, height), min(left + _GUTTER_TILE, across)
    empty = ~filled[top:bottom, left:right]
    if not empty.any():
        return
    r0, c0 = max(0, top - width), max(0, left - width)
    window = filled[r0 : min(height, bottom + width), c0 : min(across, right + width)]
    if not window.any():
        padded[top:bottom, left:right] = mean  # nothing within reach: background
        return
    # Only the nearest filled texel is asked for: the distances follow from it in integers, which
    # saves the transform's own floating-point distance map (a fifth of its time).
    rows, columns = distance_transform_edt(~window, return_distances=False, return_indices=True)
    row, column = np.nonzero(empty)
    row_w, column_w = row + top - r0, column + left - c0  # the texels, in the window
    nearest_row, nearest_column = rows[row_w, column_w], columns[row_w, column_w]
    far = (nearest_row - row_w) ** 2 + (nearest_column - column_w) ** 2 > width**2
    copied = texels[nearest_row + r0, nearest_column + c0]
    # The background far from every chart is only read by the smallest mip levels, where the mean
    # colour blends in better than black.
    copied[far] = mean
    padded[row + top, column + left] = copied


def gutter_texels(size: int) -> int:
    # Eight texels at 1024: each mip level halves the texels per side, so this keeps the background out
    # of the seams down to level 3 (128²); it scales with the texture so the same holds at 2048.
    return max(4, size // 128)


def _paint_inside(
    rgb: NDArray[np.uint8],
    inside: NDArray[np.bool_],
    runs: _Runs,
    face_colours: NDArray[np.float64],
    size: int,
) -> None:
    """Texels whose centre lies in a triangle: its colours interpolated, exactly."""
    first, last = runs.columns(-_EDGE_EPS, size)
    corner_colours = face_colours[runs.face]
    # float32 is ample for colours of 0-255 and halves the memory each texel's arithmetic moves.
    colour_slope = np.einsum("si,sic->sc", runs.slope, corner_colours).astype(np.float32)
    colour_offset = np.einsum("si,sic->sc", runs.offset, corner_colours).astype(np.float32)
    for run, column in _texels(first, last):
        check_cancelled()  # between chunks of texels: a cancelled job stops baking here
        x = (column.astype(np.float32) + np.float32(0.5))[:, None]
        texel = runs.row[run] * size + column
        # No clip needed: inside, the weights are >= -1e-9 and sum to 1, so colours stay in 0-255.
        rgb[texel] = np.rint(colour_offset[run] + x * colour_slope[run])
        inside[texel] = True


def _paint_band(
    rgb: NDArray[np.uint8],
    inside: NDArray[np.bool_],
    filled: NDArray[np.bool_],
    runs: _Runs,
    bound: NDArray[np.float64],
    face_colours: NDArray[np.float64],
    size: int,
) -> None:
    """Texels outside a border triangle but within the band: its colour clamped onto its edges."""
    near_first, near_last = runs.columns(bound, size)
    in_first, in_last = runs.columns(-_EDGE_EPS, size)
    empty = in_first > in_last  # the band crosses the row without the triangle itself
    left_last = np.where(empty, near_last, np.minimum(near_last, in_first - 1))
    right_first = np.where(empty, near_last + 1, np.maximum(near_first, in_last + 1))
    # Each run's part left of the triangle, then its part right of it, run after run: where bands
    # overlap the later triangle wins, however the runs are split into batches and chunks.
    first = np.column_stack([near_first, right_first]).ravel()
    last = np.column_stack([left_last, near_last]).ravel()
    for part, column in _texels(first, last):
        check_cancelled()
        run = part // 2
        texel = runs.row[run] * size + column
        keep = ~inside[texel]  # an inside texel, of this triangle's neighbour, stays as it is
        run, column, texel = run[keep], column[keep], texel[keep]
        weights = np.maximum(runs.slope[run] * (column + 0.5)[:, None] + runs.offset[run], 0.0)
        weights /= weights.sum(axis=1, keepdims=True)
        colour = np.einsum("ti,tic->tc", weights, face_colours[runs.face[run]])
        rgb[texel] = np.rint(colour)  # clamped weights: a blend of the corners, within 0-255
        filled[texel] = True


def _row_runs(
    faces: NDArray[np.int64],
    low: NDArray[np.int64],
    high: NDArray[np.int64],
    rows: NDArray[np.int64],
    planes: NDArray[np.float64],
) -> _Runs:
    """The runs of ``faces``, whose boxes span columns and rows ``low`` to ``high`` (F, 2)."""
    local = np.repeat(np.arange(len(faces)), rows)
    row = low[local, 1] + np.arange(len(local)) - np.repeat(np.cumsum(rows) - rows, rows)
    face = faces[local]
    coefficients = planes[face]  # (S, 3, 3): A, B, C of each corner
    offset = coefficients[:, :, 1] * (row + 0.5)[:, None] + coefficients[:, :, 2]
    return _Runs(face, row, coefficients[:, :, 0], offset, low[local, 0], high[local, 0])


def _texels(first: NDArray[np.int64], last: NDArray[np.int64]) -> Iterator[tuple[NDArray[np.int64], ...]]:
    """(run, column) of every texel of the runs, about _CHUNK_TEXELS at a time, whole runs only."""
    counts = np.maximum(last - first + 1, 0)
    ends = np.cumsum(counts)
    start = 0
    while start < len(counts):
        budget = ends[start] - counts[start] + _CHUNK_TEXELS  # a run is one row: never over a chunk
        stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
        chunk = counts[start:stop]
        run = np.repeat(np.arange(start, stop), chunk)
        column = first[run] + np.arange(len(run)) - np.repeat(np.cumsum(chunk) - chunk, chunk)
        yield run, column
        start = stop


def _touches_border(faces: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Whether each face has a corner on a chart border: an edge that no other face shares in UV space."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    count = int(faces.max()) + 1
    # One integer per undirected edge: a 1-D unique is several times faster than one over rows.
    _, inverse, counts = np.unique(edges[:, 0] * count + edges[:, 1], return_inverse=True, return_counts=True)
    on_border = np.zeros(count, bool)
    on_border[edges[counts[inverse] == 1].ravel()] = True
    corner = on_border[faces]
    touches: NDArray[np.bool_] = corner[:, 0] | corner[:, 1] | corner[:, 2]
    return touches


def _barycentric_planes(corners: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per face, (A, B, C) of each corner so that its barycentric weight is A x + B y + C; (F, 3, 3).

    Also returns twice the signed area; the planes of degenerate faces are left at zero.
    """
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    doubled_area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    safe = np.where(np.abs(doubled_area) > 1e-12, doubled_area, np.inf)
    planes = [
        np.stack([p[:, 1] - q[:, 1], q[:, 0] - p[:, 0], p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]], axis=1)
        for p, q in ((b, c), (c, a), (a, b))  # corner i is weighted by the edge opposite it
    ]
    return np.stack(planes, axis=1) / safe[:, None, None], doubled_area


def _batches(rows: NDArray[np.int64]) -> Iterator[NDArray[np.int64]]:
    """Faces with rows to paint, in consecutive batches of about _RUNS_PER_BATCH runs."""
    faces = np.flatnonzero(rows > 0)
    if len(faces) == 0:
        return
    batch_of = (np.cumsum(rows[faces]) - rows[faces]) // _RUNS_PER_BATCH
    yield from np.split(faces, np.flatnonzero(np.diff(batch_of)) + 1)
