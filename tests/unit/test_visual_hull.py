"""Visual-hull reconstruction from canonical views of known meshes, drawn by the software rasteriser.

Bounds are measured values with margin. A visual hull is larger than the object wherever no camera sees
an outline edge-on (each perspective camera sees only a face's near outline, and its cone widens
behind it), so a unit cube comes back ≈1.08 across and a sphere seen from four horizontal cameras
has square horizontal sections; the bounds below allow for that, not for sloppiness.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import trimesh

from meshforge.errors import InvalidInput
from meshforge.geometry.raster import render_mesh
from meshforge.geometry.views import BACKGROUND_RGB, FRONT, OBJECT_EXTENT, VIEW_SETS, camera_for
from reconstruction_service.visual_hull import reconstruct
from tests.meshes import box_fill, chamfer, radial_spread, stacked_boxes

SIZE = 256
RED = (215, 35, 35, 255)


def _normalised(mesh: trimesh.Trimesh, rgba: tuple[int, int, int, int] = RED) -> trimesh.Trimesh:
    mesh = mesh.copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(OBJECT_EXTENT / mesh.extents.max())
    if mesh.visual.kind is None:
        mesh.visual.vertex_colors = rgba
    return mesh


@cache
def _shape(name: str) -> trimesh.Trimesh:
    makers = {
        "cube": lambda: trimesh.creation.box(extents=(1.0, 1.0, 1.0)),
        "sphere": lambda: trimesh.creation.icosphere(subdivisions=4),
        "cylinder": lambda: trimesh.creation.cylinder(radius=0.5, height=1.0, sections=64),
        "stacked": stacked_boxes,
    }
    return _normalised(makers[name]())


def _views(mesh: trimesh.Trimesh, count: int, size: int = SIZE) -> list[np.ndarray]:
    return [render_mesh(mesh, camera_for(view, size)).rgba for view in VIEW_SETS[count]]


@cache
def _reconstructed(name: str, count: int) -> trimesh.Trimesh:
    return reconstruct(_views(_shape(name), count), VIEW_SETS[count], resolution=64)


def _vertex_rgb(mesh: trimesh.Trimesh) -> np.ndarray:
    return np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[:, :3]


def _blank_view(size: int = SIZE) -> np.ndarray:
    image = np.zeros((size, size, 4), dtype=np.uint8)
    image[..., :3] = BACKGROUND_RGB
    return image


def test_cube_from_four_views_is_closed_and_box_like() -> None:
    mesh = _reconstructed("cube", 4)
    assert mesh.is_watertight
    assert mesh.volume > 0  # faces wind outward
    # Measured 1.083 on every axis: the perspective bulge of a four-view hull, not noise.
    np.testing.assert_allclose(mesh.extents, 1.08, atol=0.04)
    assert box_fill(mesh) > 0.8  # measured 0.87
    np.testing.assert_allclose(mesh.bounds.mean(axis=0), 0.0, atol=0.01)


def test_sphere_from_eight_views_is_roughly_spherical() -> None:
    mesh = _reconstructed("sphere", 8)
    assert mesh.is_watertight
    assert radial_spread(mesh) < 0.025  # measured 0.011; the four-view hull has 0.07
    np.testing.assert_allclose(mesh.extents, 1.0, atol=0.03)


# Symmetric Chamfer distance (tests.meshes.chamfer, 5000 samples a side, which alone contributes about
# 0.01) at resolution 64 from 256² views. Measured: cube 0.026/0.026, sphere 0.034/0.014, cylinder
# 0.027/0.023, stacked boxes 0.018/0.018 (4/8 views). Bounds leave ≈30% margin.
@pytest.mark.parametrize(
    ("name", "count", "bound"),
    [
        ("cube", 4, 0.035),
        ("cube", 8, 0.035),
        ("sphere", 4, 0.045),
        ("sphere", 8, 0.02),
        ("cylinder", 4, 0.035),
        ("cylinder", 8, 0.03),
        ("stacked", 4, 0.025),
        ("stacked", 8, 0.025),
    ],
)
def test_known_mesh_reconstructs_within_chamfer_distance(name: str, count: int, bound: float) -> None:
    mesh = _reconstructed(name, count)
    assert mesh.is_watertight
    assert chamfer(mesh, _shape(name)) < bound


def test_more_views_never_make_the_hull_larger() -> None:
    for name in ("sphere", "cylinder"):
        assert _reconstructed(name, 8).volume <= _reconstructed(name, 4).volume * 1.01


def test_colours_come_from_the_views() -> None:
    rgb = _vertex_rgb(_reconstructed("cube", 4))
    # Every vertex red, including the top and bottom no horizontal camera sees (filled from neighbours).
    assert (rgb[:, 0] > 110).all()
    assert (rgb[:, 0] > 2.5 * rgb[:, 1:].max(axis=1)).all()


def test_each_side_takes_the_colour_its_own_camera_sees() -> None:
    face_rgb = {(0, 0, 1): (220, 30, 30), (0, 0, -1): (30, 30, 220), (1, 0, 0): (30, 200, 30)}
    face_rgb |= {(-1, 0, 0): (230, 220, 30), (0, 1, 0): (240, 240, 240), (0, -1, 0): (20, 20, 20)}
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    normals = np.rint(cube.face_normals).astype(int)
    cube.visual.face_colors = [(*face_rgb[tuple(n)], 255) for n in normals]
    mesh = reconstruct(_views(cube, 4), VIEW_SETS[4], resolution=48)
    rgb, vertex_normals = _vertex_rgb(mesh), mesh.vertex_normals
    for direction in [(0, 0, 1), (0, 0, -1), (1, 0, 0), (-1, 0, 0)]:
        facing = vertex_normals @ np.array(direction) > 0.9
        expected = np.array(face_rgb[direction], dtype=float)
        mean = rgb[facing].mean(axis=0)
        # Shading scales colours by 0.55..1, so compare the colour's direction, not its brightness.
        cosine = mean @ expected / (np.linalg.norm(mean) * np.linalg.norm(expected))
        assert cosine > 0.98, (direction, mean)


def test_hidden_surfaces_do_not_take_the_colour_of_what_hides_them() -> None:
    # A red block floats in front of a blue slab: the front camera sees red where the slab's face is.
    slab = trimesh.creation.box(extents=(1.0, 1.0, 0.4))
    slab.apply_translation((0.0, 0.0, -0.3))
    slab.visual.vertex_colors = (30, 30, 220, 255)
    block = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    block.apply_translation((0.0, 0.0, 0.15))
    block.visual.vertex_colors = RED
    mesh = reconstruct(_views(trimesh.util.concatenate([slab, block]), 4), VIEW_SETS[4], resolution=64)
    vertices, rgb = mesh.vertices, _vertex_rgb(mesh)
    behind_block = (np.abs(vertices[:, 2] + 0.1) < 0.02) & (np.abs(vertices[:, :2]) < 0.12).all(axis=1)
    behind_block &= mesh.vertex_normals[:, 2] > 0.9
    assert behind_block.sum() > 50
    assert (rgb[behind_block, 2] > 2 * rgb[behind_block, 0]).all()


def test_mesh_keeps_the_canonical_orientation() -> None:
    # The stacked boxes' small blue block sits on the right (+X) and on top (+Y).
    mesh, truth = _reconstructed("stacked", 4), _shape("stacked")
    upper, lower = mesh.vertices[:, 1] > 0.2, mesh.vertices[:, 1] < -0.2
    block_x = truth.vertices[truth.vertices[:, 1] > 0.2, 0].mean()
    assert mesh.vertices[upper, 0].mean() == pytest.approx(block_x, abs=0.03)
    rgb = _vertex_rgb(mesh)
    assert (rgb[upper, 2] > rgb[upper, 0]).all()
    assert (rgb[lower, 0] > rgb[lower, 2]).all()


def test_single_front_image_gives_a_closed_low_fidelity_mesh() -> None:
    front = _views(_shape("cube"), 4)[0]
    mesh = reconstruct([front], (FRONT,), resolution=48)
    assert mesh.is_watertight
    assert mesh.volume > 0
    # The square outline stands in for the sides too, so depth comes out as wide as the cube.
    np.testing.assert_allclose(mesh.extents, 1.08, atol=0.05)
    assert (_vertex_rgb(mesh)[:, 0] > 2.5 * _vertex_rgb(mesh)[:, 1:].max(axis=1)).all()


def test_single_front_image_keeps_an_off_centre_outline() -> None:
    # Without mirroring, the back stand-in view would put the object at -X and nothing would survive.
    post = trimesh.creation.box(extents=(0.3, 0.8, 0.3))
    post.apply_translation((0.3, 0.0, 0.0))
    post.visual.vertex_colors = RED
    front = render_mesh(post, camera_for(FRONT, SIZE)).rgba
    mesh = reconstruct([front], (FRONT,), resolution=48)
    assert mesh.bounds[0, 0] == pytest.approx(0.15, abs=0.03)
    assert mesh.bounds[1, 0] == pytest.approx(0.45, abs=0.04)


def test_rgb_photo_without_alpha_is_matted_by_border_flood_fill() -> None:
    # The rendered views without their alpha channel: plain RGB on the grey background.
    photos = [view[..., :3].copy() for view in _views(_shape("cylinder"), 4)]
    mesh = reconstruct(photos, VIEW_SETS[4], resolution=64)
    matted = _reconstructed("cylinder", 4)
    assert mesh.is_watertight
    # Colour matting finds exactly the alpha matte here, so the hull is the same to the vertex.
    assert mesh.vertices.shape == matted.vertices.shape
    np.testing.assert_allclose(mesh.vertices, matted.vertices, atol=1e-6)


def test_thin_parts_survive_carving() -> None:
    # A 0.012-wide rod is 1.6 pixels across in a 256² view and under a voxel at resolution 64.
    body = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    rod = trimesh.creation.cylinder(radius=0.006, height=0.45, sections=16)
    rod.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
    rod.apply_translation((0.45, 0.0, 0.0))
    mesh = _normalised(trimesh.util.concatenate([body, rod]))
    hull = reconstruct(_views(mesh, 4), VIEW_SETS[4], resolution=64)
    assert hull.bounds[1, 0] == pytest.approx(mesh.bounds[1, 0], abs=0.02)
    assert len(hull.split(only_watertight=False)) == 1


def test_smaller_object_gets_a_finer_grid() -> None:
    # Uploaded photos need not show the object at OBJECT_EXTENT; the fine pass fits the occupied box.
    small = _shape("sphere").copy()
    small.apply_scale(0.5)
    mesh = reconstruct(_views(small, 8), VIEW_SETS[8], resolution=64)
    np.testing.assert_allclose(mesh.extents, 0.5, atol=0.02)
    assert radial_spread(mesh) < 0.03
    full = _reconstructed("sphere", 8)
    assert len(mesh.vertices) > 0.7 * len(full.vertices)


def test_higher_resolution_gives_a_denser_mesh() -> None:
    views = _views(_shape("cylinder"), 4)
    coarse = reconstruct(views, VIEW_SETS[4], resolution=32)
    fine = reconstruct(views, VIEW_SETS[4], resolution=64)
    assert len(fine.faces) > 3 * len(coarse.faces)
    assert chamfer(coarse, fine) < 0.02


def _square_view(rows: slice, cols: slice) -> np.ndarray:
    image = _blank_view()
    image[rows, cols] = (*RED[:3], 255)
    return image


def test_inconsistent_views_raise_invalid_input() -> None:
    # The front sees the object in the top half of the frame, the other views in the bottom half.
    top, bottom = _square_view(slice(30, 100), slice(90, 166)), _square_view(slice(156, 226), slice(90, 166))
    with pytest.raises(InvalidInput, match=r"no point lies inside every silhouette.*docs/views\.md"):
        reconstruct([top, bottom, bottom, bottom], VIEW_SETS[4], resolution=32)


def test_partly_overlapping_views_raise_invalid_input() -> None:
    # Heights overlap by a third: a sliver survives, but it explains little of the front silhouette.
    front = _square_view(slice(60, 150), slice(90, 166))
    others = _square_view(slice(120, 210), slice(90, 166))
    with pytest.raises(InvalidInput, match="covers only"):
        reconstruct([front, others, others, others], VIEW_SETS[4], resolution=32)


def test_mismatched_inputs_raise_invalid_input() -> None:
    views = _views(_shape("cube"), 4)
    with pytest.raises(InvalidInput, match="one image per view"):
        reconstruct(views[:3], VIEW_SETS[4])
    with pytest.raises(InvalidInput, match="same size"):
        reconstruct([*views[:3], _blank_view(128)], VIEW_SETS[4])
    with pytest.raises(InvalidInput, match="square"):
        reconstruct([view[:, :200] for view in views], VIEW_SETS[4])
    with pytest.raises(InvalidInput, match="no object"):
        reconstruct([*views[:3], _blank_view()], VIEW_SETS[4])


@pytest.mark.parametrize("resolution", [4, 1024])
def test_resolution_outside_the_supported_range_is_a_configuration_error(resolution: int) -> None:
    with pytest.raises(ValueError, match="resolution"):
        reconstruct(_views(_shape("cube"), 4), VIEW_SETS[4], resolution=resolution)
