"""The software rasteriser: exact silhouettes, z-buffering, shading, and the canonical camera convention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from meshforge.geometry import raster
from meshforge.geometry.raster import DEFAULT_RGB, KEY_LIGHT_CAM, render_mesh
from meshforge.geometry.views import (
    BACKGROUND_RGB,
    CAMERA_DISTANCE,
    FRONT,
    OBJECT_EXTENT,
    VIEW_SETS,
    Camera,
    camera_for,
)

RED = (215, 35, 35, 255)


def _unit_cube(rgba: tuple[int, int, int, int] | None = RED) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=(OBJECT_EXTENT,) * 3)
    if rgba is not None:
        mesh.visual.vertex_colors = rgba
    return mesh


def _triangle(points: np.ndarray, rgba: tuple[int, int, int, int]) -> trimesh.Trimesh:
    mesh = trimesh.Trimesh(vertices=points, faces=[[0, 1, 2]], process=False)
    mesh.visual.face_colors = rgba
    return mesh


def _pixel_rays(camera: Camera) -> np.ndarray:
    """World-space unit ray directions through every pixel centre, shape (H, W, 3).

    Built from the camera convention (docs/views.md) alone, not from ``Camera.project`` or the
    rasteriser, so ray casting along them is an independent check of what the rasteriser draws.
    """
    n = camera.image_size
    coords = (np.arange(n) + 0.5 - n / 2.0) / camera.focal_px
    xs, ys = np.meshgrid(coords, coords)
    dirs = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ camera.rotation
    return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)


def _world_point_at_pixel(camera: Camera, row: int, col: int, depth: float) -> np.ndarray:
    """The world point at camera depth ``depth`` whose projection is the centre of pixel (row, col)."""
    ray = _pixel_rays(camera)[row, col]
    return camera.eye + ray * depth / (ray @ camera.forward)


def _pixel_quad(camera: Camera, corners_px: list[tuple[float, float]], depth: float) -> np.ndarray:
    """World points at ``depth`` that project to the given (x, y) pixel coordinates."""
    half = camera.image_size / 2.0
    cam = [
        ((x - half) * depth / camera.focal_px, (y - half) * depth / camera.focal_px, depth)
        for x, y in corners_px
    ]
    return np.asarray(cam) @ camera.rotation + camera.eye


def test_cube_front_view_mask_is_a_centered_square() -> None:
    size = 128
    camera = camera_for(FRONT, size)
    result = render_mesh(_unit_cube(), camera)

    # Only the front face shows; it sits at depth CAMERA_DISTANCE - OBJECT_EXTENT / 2.
    half = camera.focal_px * (OBJECT_EXTENT / 2) / (CAMERA_DISTANCE - OBJECT_EXTENT / 2)
    centres = np.arange(size) + 0.5
    inside = np.abs(centres - size / 2) <= half
    np.testing.assert_array_equal(result.mask, inside[:, None] & inside[None, :])


def test_pixels_of_red_cube_are_red_in_every_view() -> None:
    for view in VIEW_SETS[8]:
        result = render_mesh(_unit_cube(), camera_for(view, 96))
        rgb = result.rgba[..., :3].astype(int)[result.mask]
        assert len(rgb) > 1000, view.name
        assert (
            (rgb[:, 0] > 90).all() and (rgb[:, 0] > 2 * rgb[:, 1]).all() and (rgb[:, 0] > 2 * rgb[:, 2]).all()
        )


def test_alpha_is_exactly_the_mask_and_background_is_untouched() -> None:
    result = render_mesh(_unit_cube(), camera_for(VIEW_SETS[8][1], 64))
    assert result.rgba.dtype == np.uint8 and result.rgba.shape == (64, 64, 4)
    np.testing.assert_array_equal(result.rgba[..., 3], np.where(result.mask, 255, 0))
    assert (result.rgba[~result.mask][:, :3] == BACKGROUND_RGB).all()
    assert np.isinf(result.depth[~result.mask]).all() and np.isfinite(result.depth[result.mask]).all()


def test_background_colour_can_be_chosen() -> None:
    result = render_mesh(_unit_cube(), camera_for(FRONT, 32), background_rgb=(0, 255, 0))
    assert tuple(result.rgba[0, 0]) == (0, 255, 0, 0)


def test_sphere_mask_area_matches_projected_disc() -> None:
    size, radius = 256, 0.5
    camera = camera_for(FRONT, size)
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    result = render_mesh(sphere, camera)
    # A sphere's silhouette under perspective is a disc of radius f * r / sqrt(d^2 - r^2).
    disc_radius = camera.focal_px * radius / math.sqrt(CAMERA_DISTANCE**2 - radius**2)
    assert result.mask.sum() == pytest.approx(math.pi * disc_radius**2, rel=0.01)
    rows, cols = np.nonzero(result.mask)
    assert rows.mean() == pytest.approx(size / 2 - 0.5, abs=0.5)
    assert cols.mean() == pytest.approx(size / 2 - 0.5, abs=0.5)


def test_depth_is_camera_space_z() -> None:
    result = render_mesh(_unit_cube(), camera_for(FRONT, 64))
    assert result.depth.dtype == np.float32
    np.testing.assert_allclose(result.depth[result.mask], CAMERA_DISTANCE - OBJECT_EXTENT / 2, rtol=1e-6)


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_triangle_hides_farther_one(near_first: bool) -> None:
    camera = camera_for(FRONT, 64)
    corners = [(8.0, 8.0), (56.0, 8.0), (32.0, 56.0)]
    near = _triangle(_pixel_quad(camera, corners, 2.0), (255, 0, 0, 255))
    far = _triangle(_pixel_quad(camera, corners, 3.0), (0, 0, 255, 255))
    parts = [near, far] if near_first else [far, near]
    result = render_mesh(trimesh.util.concatenate(parts), camera)
    rgb = result.rgba[..., :3][result.mask].astype(int)
    assert result.mask.sum() > 500
    assert (rgb[:, 0] > 0).all() and (rgb[:, 2] == 0).all()
    np.testing.assert_allclose(result.depth[result.mask], 2.0, rtol=1e-6)


def test_a_world_point_renders_at_the_pixel_camera_project_predicts() -> None:
    camera = camera_for(VIEW_SETS[8][3], 96)  # back-right, seen from above: no axis-aligned shortcut
    row, col = 23, 61
    point = _world_point_at_pixel(camera, row, col, depth=2.3)
    uv, depth = camera.project(point[None])
    np.testing.assert_allclose(uv[0], (col + 0.5, row + 0.5), atol=1e-9)

    # A triangle a few tenths of a pixel across around the point covers that pixel's centre only.
    offsets = np.array([[-0.3, -0.3, 0.0], [0.4, -0.2, 0.0], [0.0, 0.4, 0.0]]) * depth[0] / camera.focal_px
    triangle = _triangle(point + offsets @ camera.rotation, (255, 255, 255, 255))
    result = render_mesh(triangle, camera)
    assert list(zip(*np.nonzero(result.mask), strict=True)) == [(row, col)]
    assert result.depth[row, col] == pytest.approx(depth[0], rel=1e-6)


def test_world_up_is_image_up_and_world_right_is_image_right_in_front_view() -> None:
    camera = camera_for(FRONT, 64)
    marker = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
    right_high = marker.copy()
    right_high.apply_translation((0.3, 0.3, 0.0))
    rows, cols = np.nonzero(render_mesh(right_high, camera).mask)
    assert rows.mean() < 32 and cols.mean() > 32


def test_centres_on_a_shared_edge_are_covered() -> None:
    camera = camera_for(FRONT, 64)
    # Corners on pixel centres: the shared diagonal runs exactly through the centres (k + 0.5, k + 0.5).
    quad = _pixel_quad(camera, [(10.5, 10.5), (50.5, 10.5), (50.5, 50.5), (10.5, 50.5)], 2.5)
    mesh = trimesh.Trimesh(vertices=quad, faces=[[0, 1, 2], [0, 2, 3]], process=False)
    mask = render_mesh(mesh, camera).mask
    assert mask[11:50, 11:50].all()
    assert not mask[:10].any() and not mask[51:].any()


def test_cube_faces_get_different_brightness_from_an_elevated_view() -> None:
    result = render_mesh(_unit_cube(), camera_for(VIEW_SETS[8][1], 96))
    reds = np.unique(result.rgba[..., 0][result.mask])
    assert len(reds) == 3  # three flat faces, three distinct shades
    assert np.diff(reds).min() > 10


def _analytic_sphere_grey(camera: Camera, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Lambert grey of an ideal sphere at the origin, per pixel, and where the sphere faces the camera."""
    rays, eye = _pixel_rays(camera), camera.eye
    b = rays @ eye
    disc = b * b - (eye @ eye - radius**2)
    hit = eye + rays * (-b - np.sqrt(np.maximum(disc, 0.0)))[..., None]
    normal_cam = (hit / radius) @ camera.rotation.T
    grey = DEFAULT_RGB[0] * (0.55 + 0.45 * np.clip(normal_cam @ KEY_LIGHT_CAM, 0.0, 1.0))
    facing = (disc > 0) & (-(rays * hit).sum(axis=-1) / radius > 0.3)  # away from the grazing rim
    return grey, facing


def test_sphere_shading_is_smooth_not_faceted() -> None:
    camera = camera_for(FRONT, 128)
    result = render_mesh(trimesh.creation.icosphere(subdivisions=3, radius=0.5), camera)
    expected, facing = _analytic_sphere_grey(camera, 0.5)
    error = np.abs(result.rgba[..., 0].astype(float) - expected)[facing & result.mask]
    assert error.max() < 3.0  # flat shading of the same mesh is off by almost 8 levels


def test_key_light_comes_from_upper_left_front() -> None:
    result = render_mesh(trimesh.creation.icosphere(subdivisions=3, radius=0.5), camera_for(FRONT, 64))
    grey = np.where(result.mask, result.rgba[..., 0].astype(int), -1)
    row, col = np.unravel_index(np.argmax(grey), grey.shape)
    assert row < 28 and col < 28


def test_mesh_without_colours_is_drawn_light_grey_and_face_colours_are_used() -> None:
    plain = render_mesh(_unit_cube(rgba=None), camera_for(FRONT, 32))
    rgb = plain.rgba[16, 16, :3].astype(int)
    assert rgb[0] == rgb[1] == rgb[2] and DEFAULT_RGB[0] * 0.55 <= rgb[0] <= DEFAULT_RGB[0]

    cube = _unit_cube(rgba=None)
    cube.visual.face_colors = (0, 200, 0, 255)
    green = render_mesh(cube, camera_for(FRONT, 32)).rgba[16, 16, :3]
    assert green[1] > 100 and green[0] == green[2] == 0


def test_back_of_an_open_surface_is_still_lit() -> None:
    camera = camera_for(FRONT, 32)
    quad = _pixel_quad(camera, [(4.0, 4.0), (4.0, 28.0), (28.0, 4.0)], 2.0)  # wound to face away
    result = render_mesh(_triangle(quad, (255, 255, 255, 255)), camera)
    assert result.mask.sum() > 100
    assert result.rgba[..., 0][result.mask].max() > 0.55 * 255 + 10


def test_triangles_at_or_behind_the_camera_are_dropped() -> None:
    camera = camera_for(FRONT, 32)
    behind = _pixel_quad(camera, [(4.0, 4.0), (28.0, 4.0), (16.0, 28.0)], 1.0) + camera.forward * -1.5
    result = render_mesh(_triangle(behind, RED), camera)
    assert not result.mask.any()


def test_empty_mesh_renders_background() -> None:
    result = render_mesh(trimesh.Trimesh(), camera_for(FRONT, 16))
    assert not result.mask.any() and (result.rgba[..., :3] == BACKGROUND_RGB).all()


def test_rendering_is_deterministic() -> None:
    mesh = trimesh.creation.torus(0.35, 0.15)
    camera = camera_for(VIEW_SETS[8][5], 64)
    first, second = render_mesh(mesh, camera), render_mesh(mesh, camera)
    np.testing.assert_array_equal(first.rgba, second.rgba)
    np.testing.assert_array_equal(first.depth, second.depth)


def test_ambient_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="ambient"):
        render_mesh(_unit_cube(), camera_for(FRONT, 16), ambient=1.5)


def test_depth_is_perspective_correct_on_a_steeply_tilted_triangle() -> None:
    camera = camera_for(VIEW_SETS[8][1], 64)
    points = np.array([[-0.6, -0.4, 0.6], [0.6, -0.3, -0.6], [0.0, 0.5, 0.2]])
    result = render_mesh(_triangle(points, RED), camera)
    rays = _pixel_rays(camera)[result.mask]
    hits = camera.eye + rays * (result.depth[result.mask, None] / (rays @ camera.forward)[:, None])
    normal = np.cross(points[1] - points[0], points[2] - points[0])
    assert result.mask.sum() > 200
    np.testing.assert_allclose((hits - points[0]) @ normal, 0.0, atol=1e-5)


def test_splitting_work_into_batches_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = trimesh.util.concatenate([_unit_cube(), trimesh.creation.icosphere(subdivisions=2, radius=0.7)])
    camera = camera_for(VIEW_SETS[8][7], 64)
    whole = render_mesh(mesh, camera)
    monkeypatch.setattr(raster, "_CANDIDATES_PER_BATCH", 50)
    split = render_mesh(mesh, camera)
    np.testing.assert_array_equal(whole.rgba, split.rgba)
    np.testing.assert_array_equal(whole.depth, split.depth)
