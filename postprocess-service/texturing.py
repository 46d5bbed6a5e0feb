"""UV-unwrap a vertex-coloured mesh with xatlas and bake its colours into a base-colour texture.

Formats such as FBX, and most engines' import paths, keep a texture where they would drop or
mangle vertex colours, so the finished asset carries its colours as an image. The bake is done in
UV space on the CPU (``baking``): every triangle is rasterised at texel centres with its vertex
colours interpolated, then the charts are grown outwards by a gutter so that bilinear and mip-mapped
sampling near a seam never reads the empty background.

Texture coordinates follow trimesh (and OBJ): v = 0 is the bottom row of the image; the glTF
exporter flips them to glTF's top-left origin itself. Colours stay sRGB, as glTF and MTL expect of
a base-colour texture.
"""

from __future__ import annotations

import math

import numpy as np
import trimesh
import xatlas
from numpy.typing import NDArray
from PIL import Image

from meshforge.cancellation import check_cancelled
from meshforge.errors import BackendError, InvalidInput
from postprocess_service.baking import bake_texture, pad_gutters
from postprocess_service.cleaning import vertex_colours

__all__ = ["bake_vertex_colours", "pad_gutters", "unwrap"]

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
# xatlas packs by rasterising every chart at the pack resolution and trying places for it, so packing
# for a 2048² texture took longer than charting the mesh (0.3 s of 0.5 s at 80k faces). Packing at
# 1024² and drawing the layout at the texture's size gives the same utilisation (85% at 80k faces)
# and the same gaps between charts; only the charts' positions snap to a coarser grid.
PACK_RESOLUTION = 1024


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
    # fixed scale, never spills them onto a second atlas. The UVs it returns are fractions of the
    # atlas, so a layout packed at PACK_RESOLUTION serves a larger texture at the same texel density.
    resolution = min(texture_size, PACK_RESOLUTION)
    options.resolution = resolution
    # Texels between charts, about two at 1024 and four at 2048 once the atlas (typically 10-40%
    # larger than asked) is drawn at the texture's size: the gutters fill them. Counted in the
    # texture's texels, so packing at a coarser resolution leaves the same gaps.
    padding = max(3, round(3 * texture_size / 1024))
    options.padding = max(1, round(padding * resolution / texture_size))
    options.bilinear = True
    return options
