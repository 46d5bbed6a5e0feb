"""UV-unwrap a vertex-coloured mesh with xatlas and bake its colours into a base-colour texture.

Formats such as FBX, and most engines' import paths, keep a texture where they would drop or
mangle vertex colours, so the finished asset carries its colours as an image. The bake is done in
UV space on the CPU: every triangle is rasterised at texel centres with its vertex colours
interpolated, then the charts are grown outwards by a gutter so that bilinear and mip-mapped
sampling near a seam never reads the empty background.

Texture coordinates follow trimesh (and OBJ): v = 0 is the bottom row of the image; the glTF
exporter flips them to glTF's top-left origin itself. Colours stay sRGB, as glTF and MTL expect of
a base-colour texture.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import trimesh
import xatlas
from numpy.typing import NDArray
from PIL import Image
from scipy.ndimage import distance_transform_edt

from meshforge.cancellation import check_cancelled
from meshforge.errors import BackendError, InvalidInput
from postprocess_service.cleaning import vertex_colours

MIN_TEXTURE_SIZE = 16
MAX_TEXTURE_SIZE = 8192
MATERIAL_NAME = "meshforge"
PLAIN_COLOUR = (200, 200, 200)  # light grey: what an uncoloured mesh is painted
METALLIC = 0.0  # reconstructed surfaces carry no material information; matte plastic is the safe guess
ROUGHNESS = 0.9
# xatlas grows charts by scanning every face of the mesh for each new chart and every chart for each
# new face, so its time rises with faces × charts: 25-30 s for a 200k-face mesh with many creases
# (2 cores). Unwrapping the mesh as spatial pieces of at most this many faces, all packed into the one
# atlas, keeps that product small and lets xatlas chart the pieces in parallel: about 2 s for that mesh.
# The pieces' cuts become chart borders, which a mesh that size has everywhere anyway.
PIECE_FACES = 4096
# Charts also stop growing at a boundary this long (relative to √area). Without the limit xatlas grows
# a few huge charts whose flattening fails, and its face-by-face repair of those takes 9-15 s at 80k
# faces; with it, 0.2-1.6 s, and the charts of smooth meshes fill the atlas better (75-80% of it, not 60-70%).
# Packing was never the slow part: PackOptions.bruteForce stays off (xatlas's default), and fewer
# ChartOptions.max_iterations or another max_cost changed the time by 20% at most.
BOUNDARY_LENGTH = 0.3
BAND_TEXELS = 1.0  # texels this close to a triangle take its (clamped) colour: bilinear reads them
_CHUNK_TEXELS = 1 << 20  # candidate texels handled at once: bounds the rasteriser's memory


def bake_vertex_colours(mesh: trimesh.Trimesh, texture_size: int) -> trimesh.Trimesh:
    """A copy of ``mesh`` with UVs and a ``texture_size``² base-colour texture of its vertex colours.

    Vertices are split along UV seams; every copy keeps the normal of the vertex it came from, so the
    surface still shades smoothly across seams. A mesh without colours gets a plain light-grey texture.
    """
    if not MIN_TEXTURE_SIZE <= texture_size <= MAX_TEXTURE_SIZE:
        raise ValueError(
            f"texture_size must lie in [{MIN_TEXTURE_SIZE}, {MAX_TEXTURE_SIZE}], not {texture_size}"
        )
    if len(mesh.faces) == 0:
        raise InvalidInput("there is nothing to texture: the mesh has no triangles")
    colours = vertex_colours(mesh)
    source, faces, uv = unwrap(mesh, texture_size)
    if colours is None:
        texels = np.empty((texture_size, texture_size, 3), dtype=np.uint8)
        texels[:] = PLAIN_COLOUR
    else:
        texels = bake_texture(uv, faces, colours[source, :3], texture_size)
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(texels),  # uint8 rows × columns × 3: RGB
        metallicFactor=METALLIC,
        roughnessFactor=ROUGHNESS,
        name=MATERIAL_NAME,
    )
    return trimesh.Trimesh(
        vertices=mesh.vertices[source],
        faces=faces,
        vertex_normals=mesh.vertex_normals[source],
        visual=trimesh.visual.TextureVisuals(uv=uv, material=material),
        process=False,
    )


# ------------------------------------------------------------------------------------------- unwrapping


def unwrap(
    mesh: trimesh.Trimesh, texture_size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """UVs in [0, 1]² for a ``texture_size``² texture: (source vertex of each new vertex, faces, uv).

    Faces keep their order; new vertex i is a copy of ``mesh.vertices[source[i]]``.
    """
    pieces = _spatial_pieces(mesh.triangles_center, PIECE_FACES)
    atlas = xatlas.Atlas()
    used_per_piece = []
    try:
        for piece in pieces:
            # Each piece is its own xatlas mesh, with its own compact vertex numbering.
            used, local = np.unique(mesh.faces[piece], return_inverse=True)
            used_per_piece.append(used)
            atlas.add_mesh(mesh.vertices[used].astype(np.float32), local.reshape(-1, 3).astype(np.uint32))
        check_cancelled()
        atlas.generate(_chart_options(mesh), _pack_options(texture_size))
    except RuntimeError as exc:  # how xatlas reports input it cannot use; ours is a cleaned mesh
        raise BackendError(f"the mesh could not be UV-unwrapped: {exc}") from exc
    if atlas.atlas_count > 1:  # cannot happen with texels_per_unit left to xatlas, but would corrupt UVs
        raise BackendError(f"the UV layout spilled onto {atlas.atlas_count} textures instead of one")
    sources, uvs = [], []
    faces = np.empty((len(mesh.faces), 3), dtype=np.int64)
    offset = 0
    for index, (piece, used) in enumerate(zip(pieces, used_per_piece, strict=True)):
        mapping, piece_faces, piece_uv = atlas[index]
        sources.append(used[mapping])
        uvs.append(piece_uv)
        faces[piece] = piece_faces.astype(np.int64) + offset
        offset += len(mapping)
    # xatlas normalises u by the atlas width and v by its height; scaling both by the longer side keeps
    # texels square when the near-square atlas is drawn into a square texture.
    uv = np.concatenate(uvs).astype(np.float64) * (
        np.array([atlas.width, atlas.height]) / max(atlas.width, atlas.height)
    )
    return np.concatenate(sources).astype(np.int64), faces, uv


def _spatial_pieces(centres: NDArray[np.float64], limit: int) -> list[NDArray[np.int64]]:
    """Face indices split at the median of the longest axis until no piece holds more than ``limit``."""
    pieces, pending = [], [np.arange(len(centres))]
    while pending:
        faces = pending.pop()
        if len(faces) <= limit:
            pieces.append(faces)
            continue
        points = centres[faces]
        order = np.argsort(points[:, np.argmax(np.ptp(points, axis=0))], kind="stable")
        half = len(faces) // 2
        pending += [faces[order[:half]], faces[order[half:]]]
    return pieces


def _chart_options(mesh: trimesh.Trimesh) -> xatlas.ChartOptions:
    options = xatlas.ChartOptions()
    options.max_boundary_length = float(BOUNDARY_LENGTH * math.sqrt(mesh.area))
    return options


def _pack_options(texture_size: int) -> xatlas.PackOptions:
    options = xatlas.PackOptions()
    # With texels_per_unit left at 0 xatlas scales the charts to about this size and, unlike with a
    # fixed scale, never spills them onto a second atlas.
    options.resolution = texture_size
    # Texels between charts, about two at 1024 and four at 2048 once the atlas (typically 10-40%
    # larger than asked) is drawn at the texture's size: the gutters fill them.
    options.padding = max(3, round(3 * texture_size / 1024))
    options.bilinear = True
    return options


# ---------------------------------------------------------------------------------------------- baking


def bake_texture(
    uv: NDArray[np.float64], faces: NDArray[np.int64], colours: NDArray[np.uint8], size: int
) -> NDArray[np.uint8]:
    """A size×size×3 image (row 0 at v = 1) of the per-vertex RGB colours spread over the UV triangles."""
    # Texel units with y pointing down the rows: texel (row r, column c) has its centre at (c+½, r+½).
    corners = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]) * size
    triangles = _Triangles.of(corners[faces])
    face_colours = colours[faces].astype(np.float64)
    # Texels whose centre lies inside a triangle are exact. Those just outside every triangle of their
    # chart take the nearest triangle's edge colour, so bilinear reads along the chart's border stay true;
    # they are kept apart so that no such texel ever overwrites an inside one.
    inside, band = np.zeros((size * size, 3), np.uint8), np.zeros((size * size, 3), np.uint8)
    inside_hit, band_hit = np.zeros(size * size, bool), np.zeros(size * size, bool)
    for face, x, y in _texel_chunks(*_row_strips(triangles.texel_boxes(size))):
        check_cancelled()  # between chunks of texels: a cancelled job stops baking here
        weights = triangles.weights(face, x, y)
        depth = (weights * triangles.heights[face]).min(axis=1)  # to the nearest edge, < 0 outside
        near = depth >= -BAND_TEXELS
        face, weights, depth, texel = face[near], weights[near], depth[near], (y * size + x)[near]
        rgb = _interpolate(weights, face_colours[face])
        within = depth >= 0.0
        inside[texel[within]] = rgb[within]
        inside_hit[texel[within]] = True
        band[texel[~within]] = rgb[~within]
        band_hit[texel[~within]] = True
    texels = np.where(inside_hit[:, None], inside, band).reshape(size, size, 3)
    filled = (inside_hit | band_hit).reshape(size, size)
    return pad_gutters(texels, filled, _gutter_texels(size))


def pad_gutters(texels: NDArray[np.uint8], filled: NDArray[np.bool_], width: int) -> NDArray[np.uint8]:
    """Empty texels within ``width`` of a filled one copy the nearest; the rest get the mean colour."""
    if not filled.any():
        return texels
    distance, (rows, columns) = distance_transform_edt(~filled, return_indices=True)
    padded = texels[rows, columns]
    # The background far from every chart is only read by the smallest mip levels, where the mean
    # colour blends in better than black.
    padded[distance > width] = np.round(texels[filled].mean(axis=0)).astype(np.uint8)
    return padded


def _gutter_texels(size: int) -> int:
    # Eight texels at 1024: each mip level halves the texels per side, so this keeps the background out
    # of the seams down to level 3 (128²); it scales with the texture so the same holds at 2048.
    return max(4, size // 128)


def _interpolate(weights: NDArray[np.float64], colours: NDArray[np.float64]) -> NDArray[np.uint8]:
    """Colours at barycentric ``weights``, clamped onto the triangle for points outside it."""
    clamped = np.clip(weights, 0.0, None)
    clamped /= clamped.sum(axis=1, keepdims=True)
    return np.round(np.einsum("ij,ijk->ik", clamped, colours)).astype(np.uint8)


@dataclass(frozen=True)
class _Triangles:
    """UV triangles in texel units and what a texel's barycentric weights are computed from."""

    corners: NDArray[np.float64]  # (faces, 3, 2)
    first: NDArray[np.float64]  # corner 1 - corner 0
    second: NDArray[np.float64]  # corner 2 - corner 0
    doubled_area: NDArray[np.float64]  # signed
    heights: NDArray[np.float64]  # (faces, 3): from each corner to the opposite edge

    @classmethod
    def of(cls, corners: NDArray[np.float64]) -> _Triangles:
        first, second = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        doubled_area = first[:, 0] * second[:, 1] - first[:, 1] * second[:, 0]
        opposite = np.linalg.norm(corners[:, [2, 0, 1]] - corners[:, [1, 2, 0]], axis=2)
        heights = np.abs(doubled_area)[:, None] / np.maximum(opposite, 1e-12)
        return cls(corners, first, second, doubled_area, heights)

    def texel_boxes(self, size: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(face, lowest, highest (column, row)) of the texels whose centres may lie within the band."""
        # Zero-area triangles (degenerate faces, which xatlas parks on one point) cover nothing.
        faces = np.flatnonzero(np.abs(self.doubled_area) > 1e-12)
        corners = self.corners[faces]
        lowest = np.ceil(corners.min(axis=1) - BAND_TEXELS - 0.5)
        highest = np.floor(corners.max(axis=1) + BAND_TEXELS - 0.5)
        clip = (0, size - 1)
        return faces, np.clip(lowest, *clip).astype(np.int64), np.clip(highest, *clip).astype(np.int64)

    def weights(
        self, face: NDArray[np.int64], x: NDArray[np.int64], y: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Barycentric weights (texels, 3) of the centres of texels (x, y) in their faces."""
        dx, dy = x + 0.5 - self.corners[face, 0, 0], y + 0.5 - self.corners[face, 0, 1]
        first, second, doubled_area = self.first[face], self.second[face], self.doubled_area[face]
        w1 = (dx * second[:, 1] - dy * second[:, 0]) / doubled_area
        w2 = (dy * first[:, 0] - dx * first[:, 1]) / doubled_area
        return np.column_stack([1.0 - w1 - w2, w1, w2])


def _row_strips(
    boxes: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
) -> tuple[NDArray[np.int64], ...]:
    """Each box cut into strips of whole rows of at most _CHUNK_TEXELS texels, so that one huge
    triangle cannot make a chunk (and its memory) as large as the texture.

    Returns (face, first column, width, first row, rows) per strip.
    """
    faces, lowest, highest = boxes
    width, rows = (highest - lowest + 1).T
    rows_per_strip = np.maximum(1, _CHUNK_TEXELS // np.maximum(width, 1))
    strips = np.where((width > 0) & (rows > 0), -(-rows // rows_per_strip), 0)
    box = np.repeat(np.arange(len(faces)), strips)
    nth = np.arange(len(box)) - np.repeat(np.cumsum(strips) - strips, strips)
    first_row = lowest[box, 1] + nth * rows_per_strip[box]
    last_row = np.minimum(first_row + rows_per_strip[box] - 1, highest[box, 1])
    return faces[box], lowest[box, 0], width[box], first_row, last_row - first_row + 1


def _texel_chunks(
    faces: NDArray[np.int64],
    first_column: NDArray[np.int64],
    width: NDArray[np.int64],
    first_row: NDArray[np.int64],
    rows: NDArray[np.int64],
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]]:
    """Yield (face, column, row) of every texel of the strips, about _CHUNK_TEXELS at a time."""
    counts = width * rows
    ends = np.cumsum(counts)
    start = 0
    while start < len(faces):
        # Whole strips only; no strip is larger than a chunk, so each chunk makes progress.
        budget = ends[start] - counts[start] + _CHUNK_TEXELS
        stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
        chunk_counts = counts[start:stop]
        strip = np.repeat(np.arange(start, stop), chunk_counts)
        nth = np.arange(len(strip)) - np.repeat(np.cumsum(chunk_counts) - chunk_counts, chunk_counts)
        yield faces[strip], first_column[strip] + nth % width[strip], first_row[strip] + nth // width[strip]
        start = stop
