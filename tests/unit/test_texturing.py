"""UV unwrapping and colour baking (postprocess_service.texturing)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from scipy.ndimage import distance_transform_edt

from meshforge.cancellation import WorkRegistry, run_cancellable
from meshforge.errors import JobCancelled
from postprocess_service.texturing import (
    MATERIAL_NAME,
    PIECE_FACES,
    PLAIN_COLOUR,
    bake_vertex_colours,
    pad_gutters,
    unwrap,
)

RED = (220, 30, 30, 255)
BLUE = (30, 30, 220, 255)


def two_coloured_sphere(subdivisions: int = 2) -> trimesh.Trimesh:
    """Red above the equator, blue below: every colour change is a sharp one, across a single triangle."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.5)
    colours = np.where(mesh.vertices[:, 1:2] > 0, [RED], [BLUE]).astype(np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colours)
    return mesh


def texture_of(mesh: trimesh.Trimesh) -> NDArray[np.uint8]:
    return np.asarray(mesh.visual.material.baseColorTexture)


def sample_bilinear(image: NDArray[np.uint8], uv: NDArray[np.float64]) -> NDArray[np.float64]:
    """What a viewer reads at ``uv`` with bilinear filtering: texel centres at (i + ½) / size, v = 0 at
    the bottom row of the image."""
    height, width = image.shape[:2]
    x = uv[:, 0] * width - 0.5
    y = (1.0 - uv[:, 1]) * height - 0.5
    x0 = np.clip(np.floor(x).astype(int), 0, width - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, height - 2)
    fx = np.clip(x - x0, 0.0, 1.0)[:, None]
    fy = np.clip(y - y0, 0.0, 1.0)[:, None]
    texels = image.astype(np.float64)
    top = texels[y0, x0] * (1 - fx) + texels[y0, x0 + 1] * fx
    bottom = texels[y0 + 1, x0] * (1 - fx) + texels[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def source_vertices(original: trimesh.Trimesh, baked: trimesh.Trimesh) -> NDArray[np.int64]:
    """For each baked vertex, the original vertex at the same position."""
    distances = np.linalg.norm(baked.vertices[:, None] - original.vertices[None], axis=2)
    assert np.allclose(distances.min(axis=1), 0.0)
    return distances.argmin(axis=1)


def test_baked_texture_reproduces_vertex_colours() -> None:
    mesh = two_coloured_sphere()
    baked = bake_vertex_colours(mesh, 512)
    expected = mesh.visual.vertex_colors[source_vertices(mesh, baked), :3].astype(np.float64)
    shown = sample_bilinear(texture_of(baked), baked.visual.uv)
    # Most vertices lie on a chart's border, where a bilinear read also takes texels outside the chart:
    # the small error left is the colour's slope across the one texel nearest the vertex.
    assert np.abs(shown - expected).max() <= 8
    # trimesh reads the texture the same way round (v = 0 at the bottom), with its nearest-texel lookup.
    via_trimesh = baked.visual.to_color().vertex_colors[:, :3].astype(np.float64)
    assert np.abs(via_trimesh - expected).max() <= 16


def test_uv_unwrap_keeps_geometry() -> None:
    mesh = two_coloured_sphere()
    baked = bake_vertex_colours(mesh, 256)
    assert len(baked.faces) == len(mesh.faces)
    assert len(baked.vertices) > len(mesh.vertices)  # split along the seams
    assert np.array_equal(np.unique(baked.vertices, axis=0), np.unique(mesh.vertices, axis=0))
    assert np.array_equal(baked.triangles, mesh.triangles)  # every face kept, in its place and order
    assert baked.visual.uv.shape == (len(baked.vertices), 2)
    assert baked.visual.uv.min() >= 0.0
    assert baked.visual.uv.max() <= 1.0


def test_split_seam_vertices_keep_the_original_normal() -> None:
    mesh = two_coloured_sphere()
    baked = bake_vertex_colours(mesh, 256)
    # Normals recomputed per split copy would differ on either side of a seam and show it as a crease.
    assert np.allclose(baked.vertex_normals, mesh.vertex_normals[source_vertices(mesh, baked)])


def test_texture_is_a_matte_pbr_material_of_the_requested_size() -> None:
    baked = bake_vertex_colours(two_coloured_sphere(), 1024)
    material = baked.visual.material
    assert isinstance(material, trimesh.visual.material.PBRMaterial)
    assert material.baseColorTexture.size == (1024, 1024)
    assert material.baseColorTexture.mode == "RGB"
    assert material.metallicFactor == 0.0
    assert material.roughnessFactor == pytest.approx(0.9)
    assert material.name == MATERIAL_NAME


def test_gutter_padding_fills_texels_next_to_charts() -> None:
    texels = np.zeros((32, 32, 3), dtype=np.uint8)
    filled = np.zeros((32, 32), dtype=bool)
    filled[10:20, 10:14] = True
    texels[10:20, 10:12] = RED[:3]  # the chart's left half
    texels[10:20, 12:14] = BLUE[:3]
    padded = pad_gutters(texels, filled, width=3)
    assert np.array_equal(padded[filled], texels[filled])  # the chart itself is left alone
    # Up to three texels out, each empty texel repeats the chart texel nearest to it.
    assert (padded[10:20, 7:10] == RED[:3]).all()
    assert (padded[10:20, 14:17] == BLUE[:3]).all()
    assert (padded[7:10, 10:12] == RED[:3]).all()
    assert (padded[20:23, 12:14] == BLUE[:3]).all()
    # Farther out, nothing is left empty (black): the rest takes the chart's mean colour.
    mean = np.round(texels[filled].mean(axis=0))
    assert (padded[0:5, 0:5] == mean).all()
    assert (padded[25:, 25:] == mean).all()


def whole_image_padding(
    texels: NDArray[np.uint8], filled: NDArray[np.bool_], width: int
) -> NDArray[np.uint8]:
    """The padding's definition, on the whole image at once: what the tiled padding must equal."""
    rows, columns = distance_transform_edt(~filled, return_distances=False, return_indices=True)
    grid_rows, grid_columns = np.indices(filled.shape)
    far = (rows - grid_rows) ** 2 + (columns - grid_columns) ** 2 > width**2
    padded = texels[rows, columns]
    padded[far & ~filled] = np.round(texels[filled].mean(axis=0)).astype(np.uint8)
    return padded


def test_gutter_padding_across_tiles_equals_padding_the_whole_image() -> None:
    """Charts on and near tile borders, a texture of several 512² tiles with empty ones among them."""
    rng = np.random.default_rng(7)
    size, width = 1300, 12
    filled = np.zeros((size, size), dtype=bool)
    for top, left in rng.integers(0, 700, (40, 2)):
        filled[top : top + rng.integers(3, 60), left : left + rng.integers(3, 60)] = True
    filled[500:530, 505:520] = True  # across the corner of four tiles
    texels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    assert np.array_equal(pad_gutters(texels, filled, width), whole_image_padding(texels, filled, width))


def test_gutter_padding_stops_between_tiles_once_cancelled() -> None:
    registry = WorkRegistry()
    texels = np.zeros((2048, 2048, 3), dtype=np.uint8)
    filled = np.zeros((2048, 2048), dtype=bool)
    filled[::40, ::40] = True  # a chart in every tile: each one is a transform, about 1 s in all

    async def pad_cancelled() -> None:
        job_id = "d" * 32
        work = asyncio.ensure_future(
            run_cancellable(pad_gutters, texels, filled, 16, job_id=job_id, registry=registry)
        )
        while not registry.running(job_id):
            await asyncio.sleep(0)
        registry.cancel(job_id)
        await work

    with pytest.raises(JobCancelled):
        asyncio.run(pad_cancelled())


def test_baked_texture_leaves_no_empty_texels() -> None:
    texture = texture_of(bake_vertex_colours(two_coloured_sphere(), 256))
    assert not (texture == 0).all(axis=2).any()


def test_mesh_without_colours_gets_a_plain_texture() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    baked = bake_vertex_colours(mesh, 128)
    texture = texture_of(baked)
    assert texture.shape == (128, 128, 3)
    assert (texture == PLAIN_COLOUR).all()
    assert len(baked.faces) == len(mesh.faces)
    assert baked.visual.uv.shape == (len(baked.vertices), 2)  # still unwrapped, ready to be painted


def test_large_mesh_is_unwrapped_in_pieces_onto_one_atlas_without_overlaps() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=5)  # 20480 faces: five pieces or more
    assert len(mesh.faces) > 4 * PIECE_FACES
    size = 4096  # large, so that every triangle covers many texels and its centroid is well inside
    source, faces, uv = unwrap(mesh, size)
    assert np.array_equal(mesh.vertices[source][faces], mesh.triangles)
    # Draw each face with its own id; where charts overlapped, a face drawn later would cover the
    # centroid of one drawn earlier.
    ids = Image.new("I", (size, size), 0)
    draw = ImageDraw.Draw(ids)
    corners = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]) * size
    for face, triangle in enumerate(corners[faces]):
        draw.polygon([tuple(point) for point in triangle], fill=face + 1)
    centroids = np.floor(corners[faces].mean(axis=1)).astype(int)
    drawn = np.asarray(ids)[centroids[:, 1], centroids[:, 0]]
    assert np.mean(drawn == np.arange(1, len(faces) + 1)) > 0.99


@pytest.mark.parametrize("size", [0, 8, 100_000])
def test_texture_size_out_of_range_raises_value_error(size: int) -> None:
    with pytest.raises(ValueError, match="texture_size"):
        bake_vertex_colours(two_coloured_sphere(), size)
