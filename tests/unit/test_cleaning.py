"""Loading, cleaning, decimation (postprocess_service.cleaning) and placement (postprocess_service.placement)
of raw reconstructed meshes."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest
import trimesh
from numpy.typing import NDArray
from skimage import measure

from meshforge.errors import InvalidInput
from meshforge.schemas import Origin
from postprocess_service.cleaning import clean_mesh, decimate, load_mesh
from postprocess_service.placement import place


def colour_of(points: NDArray[np.float64]) -> NDArray[np.uint8]:
    """A smooth colour field over space, so any vertex's expected colour follows from its position."""
    rgb = np.clip((points + 1.0) * 127.5, 0, 255)
    return np.column_stack([rgb, np.full(len(points), 255)]).astype(np.uint8)


def coloured(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colour_of(mesh.vertices))
    return mesh


def sphere(
    subdivisions: int = 3, radius: float = 0.5, centre: tuple[float, float, float] = (0, 0, 0)
) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    mesh.apply_translation(centre)
    return coloured(mesh)


def unwelded(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Every face with its own three vertices, as many exporters write a flat-shaded surface."""
    triangles = mesh.triangles.reshape(-1, 3)
    faces = np.arange(len(triangles)).reshape(-1, 3)
    return coloured(trimesh.Trimesh(triangles, faces, process=False))


def table_like(resolution: int = 140) -> trimesh.Trimesh:
    """A marching-cubes surface with thin legs and a thin top, the kind that collapses when decimated."""
    x, y, z = np.mgrid[-1 : 1 : resolution * 1j, -1 : 1 : resolution * 1j, -1 : 1 : resolution * 1j]
    field = np.sqrt(x**2 + (y - 0.3) ** 2 + z**2) - 0.35
    for cx, cz in [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)]:
        leg = np.sqrt((x - cx) ** 2 + (z - cz) ** 2) - 0.025
        field = np.minimum(field, np.maximum(leg, np.abs(y + 0.3) - 0.6))
    top = np.maximum(np.abs(y - 0.75) - 0.012, np.maximum(np.abs(x) - 0.7, np.abs(z) - 0.7))
    field = np.minimum(field, top)
    vertices, faces, _, _ = measure.marching_cubes(field, 0.0, spacing=(2 / (resolution - 1),) * 3)
    return coloured(trimesh.Trimesh(vertices - 1.0, faces, process=False))


def assert_colours_follow_positions(mesh: trimesh.Trimesh, tolerance: int) -> None:
    assert mesh.visual.kind == "vertex"
    error = np.abs(mesh.visual.vertex_colors.astype(int) - colour_of(mesh.vertices).astype(int))
    assert error.max() <= tolerance


def outward_fraction(mesh: trimesh.Trimesh) -> float:
    """Share of faces whose normal points away from the centre of a star-shaped mesh."""
    away = mesh.triangles_center - mesh.bounds.mean(axis=0)
    return float(np.mean(np.einsum("ij,ij->i", mesh.face_normals, away) > 0))


# ---------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("suffix", ["glb", "obj", "ply", "stl"])
def test_each_supported_format_loads_as_one_mesh(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"raw.{suffix}"
    sphere().export(path)
    mesh = load_mesh(path)
    assert isinstance(mesh, trimesh.Trimesh)
    assert len(mesh.faces) == len(sphere().faces)


@pytest.mark.parametrize("suffix", ["glb", "ply"])
def test_loading_keeps_vertex_colours(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"raw.{suffix}"
    sphere().export(path)
    assert_colours_follow_positions(load_mesh(path), tolerance=1)


def test_scene_is_merged_into_one_mesh_with_transforms_and_colours(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(sphere(2), node_name="body")
    scene.add_geometry(
        sphere(1, radius=0.1),
        node_name="button",
        transform=trimesh.transformations.translation_matrix([0.8, 0, 0]),
    )
    path = tmp_path / "raw.glb"
    scene.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == len(sphere(2).faces) + len(sphere(1).faces)
    assert mesh.bounds[1][0] == pytest.approx(0.9, abs=1e-5)  # the button's node transform was applied
    assert mesh.visual.kind == "vertex"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("raw.glb", b"glTF\x02\x00\x00\x00 this is not a binary glTF"),
        ("raw.obj", bytes(range(256)) * 4),
        ("raw.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1 2"),
        ("raw.stl", bytes(range(256)) * 4),
        ("raw.gltf", b"{not json"),
    ],
)
def test_corrupt_file_raises_invalid_input_naming_the_file(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as caught:
        load_mesh(path)
    assert caught.value.message.startswith(f'the mesh file "{name}" could not be read: ')
    assert "Traceback" not in caught.value.message
    assert str(tmp_path) not in caught.value.message  # the server's folders are not the reader's business


def test_missing_file_raises_invalid_input_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=re.escape('"raw.glb" could not be read: there is no such file')):
        load_mesh(tmp_path / "raw.glb")


def test_empty_file_raises_invalid_input_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "raw.ply").write_bytes(b"")
    with pytest.raises(InvalidInput, match=re.escape('"raw.ply" could not be read: the file is empty')):
        load_mesh(tmp_path / "raw.ply")


def test_file_without_faces_raises_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(
        InvalidInput, match=re.escape('"points.obj" could not be read: it contains no triangles')
    ):
        load_mesh(tmp_path / "points.obj")


def test_unreadable_extension_raises_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "raw.fbx").write_bytes(b"Kaydara FBX Binary")
    with pytest.raises(InvalidInput, match="FBX is not a format this stage reads"):
        load_mesh(tmp_path / "raw.fbx")


# --------------------------------------------------------------------------------------------- cleaning


def test_duplicate_vertices_are_merged() -> None:
    welded = sphere()
    cleaned = clean_mesh(unwelded(welded))
    assert len(cleaned.vertices) == len(welded.vertices)
    assert cleaned.is_watertight


def test_degenerate_and_duplicate_faces_are_dropped() -> None:
    mesh = sphere()
    extra = np.array([[0, 0, 1], [5, 5, 5], mesh.faces[0], mesh.faces[7]])
    noisy = coloured(trimesh.Trimesh(mesh.vertices, np.vstack([mesh.faces, extra]), process=False))
    cleaned = clean_mesh(noisy)
    assert len(cleaned.faces) == len(mesh.faces)
    assert cleaned.is_watertight


def test_unreferenced_vertices_are_dropped() -> None:
    mesh = sphere()
    stray = np.vstack([mesh.vertices, [[3.0, 3.0, 3.0], [4.0, 4.0, 4.0]]])
    cleaned = clean_mesh(coloured(trimesh.Trimesh(stray, mesh.faces, process=False)))
    assert len(cleaned.vertices) == len(mesh.vertices)


def test_small_fragments_are_dropped() -> None:
    body = sphere(4)  # 5120 faces
    crumb = sphere(0, radius=0.05, centre=(0.9, 0, 0))  # 20 faces: 0.4% of the body
    handle = sphere(2, radius=0.2, centre=(-0.9, 0, 0))  # 320 faces: 6% of the body
    cleaned = clean_mesh(trimesh.util.concatenate([body, crumb, handle]))
    assert len(cleaned.faces) == len(body.faces) + len(handle.faces)
    assert cleaned.body_count == 2
    assert cleaned.bounds[1][0] == pytest.approx(0.5)  # the crumb at x = 0.9 is gone


def test_fragment_removal_never_drops_everything() -> None:
    twins = trimesh.util.concatenate([sphere(2), sphere(2, centre=(2, 0, 0))])
    cleaned = clean_mesh(twins, min_fragment_fraction=1.0)
    assert len(cleaned.faces) == len(twins.faces)


def test_inverted_mesh_gets_outward_normals() -> None:
    mesh = sphere()
    inverted = coloured(trimesh.Trimesh(mesh.vertices, mesh.faces[:, ::-1], process=False))
    assert inverted.volume < 0
    cleaned = clean_mesh(inverted)
    assert cleaned.volume > 0
    assert outward_fraction(cleaned) == 1.0


def test_inconsistent_winding_is_made_consistent_and_outward() -> None:
    mesh = sphere(4)
    faces = mesh.faces.copy()
    flipped = np.random.default_rng(7).random(len(faces)) < 0.3
    faces[flipped] = faces[flipped, ::-1]
    cleaned = clean_mesh(coloured(trimesh.Trimesh(mesh.vertices, faces, process=False)))
    assert cleaned.is_winding_consistent
    assert cleaned.volume > 0
    assert outward_fraction(cleaned) == 1.0


def test_each_body_of_a_multi_body_mesh_faces_outward() -> None:
    inner = sphere(2, centre=(2, 0, 0))
    inverted = trimesh.Trimesh(inner.vertices, inner.faces[:, ::-1], process=False)
    cleaned = clean_mesh(trimesh.util.concatenate([sphere(2), coloured(inverted)]))
    assert all(body.volume > 0 for body in cleaned.split(only_watertight=False))


def test_cleaning_keeps_vertex_colours() -> None:
    cleaned = clean_mesh(unwelded(sphere()))
    assert_colours_follow_positions(cleaned, tolerance=1)


def test_cleaning_leaves_the_input_untouched() -> None:
    raw = unwelded(sphere())
    vertices, faces = raw.vertices.copy(), raw.faces.copy()
    clean_mesh(raw)
    assert np.array_equal(raw.vertices, vertices)
    assert np.array_equal(raw.faces, faces)


def test_marching_cubes_surface_stays_closed_and_outward() -> None:
    cleaned = clean_mesh(table_like(100))
    assert cleaned.is_watertight
    assert cleaned.volume > 0
    assert all(body.volume > 0 for body in cleaned.split())


def test_mesh_of_only_degenerate_faces_raises_invalid_input() -> None:
    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2], [0, 0, 1]], process=False)
    with pytest.raises(InvalidInput, match="no usable triangles"):
        clean_mesh(flat)


# ------------------------------------------------------------------------------------------- decimation


@pytest.mark.parametrize("target", [5_000, 20_000])
def test_decimation_lands_within_five_percent_of_target(target: int) -> None:
    mesh = sphere(6)  # 81,920 faces
    reduced = decimate(mesh, target)
    assert abs(len(reduced.faces) - target) <= 0.05 * target
    assert reduced.is_watertight
    assert reduced.volume > 0


def test_decimation_keeps_vertex_colours() -> None:
    reduced = decimate(sphere(6), 5_000)
    # Nearest original vertex: the colour field moves by at most a few steps over one original edge.
    assert_colours_follow_positions(reduced, tolerance=8)
    assert len(np.unique(reduced.visual.vertex_colors, axis=0)) > 1_000


def test_decimation_keeps_a_closed_mesh_with_thin_parts_closed() -> None:
    mesh = clean_mesh(table_like(140))
    for target in (1_000, 2_000, 5_000):
        reduced = decimate(mesh, target)
        assert abs(len(reduced.faces) - target) <= 0.05 * target
        assert reduced.is_watertight, f"open after decimating to {target} faces"


def test_concurrent_decimations_do_not_mix_meshes() -> None:
    # fast-simplification holds its working mesh in global state; the service decimates in threads.
    jobs = [(sphere(6), 5_000, 0.5), (sphere(5, radius=2.0), 2_000, 2.0)]
    failures: list[str] = []

    def run(mesh: trimesh.Trimesh, target: int, radius: float) -> None:
        for _ in range(8):
            reduced = decimate(mesh, target)
            if abs(len(reduced.faces) - target) > 0.05 * target or reduced.extents.max() > 2.02 * radius:
                failures.append(f"{target}: {len(reduced.faces)} faces, extent {reduced.extents.max():.2f}")

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_mesh_at_or_below_target_is_returned_unchanged() -> None:
    mesh = sphere(3)  # 1280 faces
    assert decimate(mesh, 1280) is mesh
    assert decimate(mesh, 50_000) is mesh


def test_decimation_rejects_a_target_below_a_tetrahedron() -> None:
    with pytest.raises(ValueError, match="target_faces"):
        decimate(sphere(), 3)


# ------------------------------------------------------------------------------------------- placement


def test_place_puts_bottom_centre_at_origin_by_default() -> None:
    mesh = coloured(trimesh.creation.box(extents=(0.4, 1.0, 0.2)))
    mesh.apply_translation([3.0, -2.0, 5.0])
    top_vertex = int(np.argmax(mesh.vertices[:, 1]))
    placed = place(mesh)
    lower, upper = placed.bounds
    assert lower[1] == pytest.approx(0.0)
    assert (lower[0] + upper[0]) / 2 == pytest.approx(0.0)
    assert (lower[2] + upper[2]) / 2 == pytest.approx(0.0)
    assert np.allclose(upper - lower, [0.4, 1.0, 0.2])  # moved, not rotated or scaled
    assert int(np.argmax(placed.vertices[:, 1])) == top_vertex  # +Y up stays up
    assert np.array_equal(placed.visual.vertex_colors, mesh.visual.vertex_colors)
    assert mesh.bounds[0][1] == pytest.approx(-2.5)  # the input was not moved


def test_place_can_centre_the_origin_and_scale_to_a_height_in_metres() -> None:
    mesh = trimesh.creation.box(extents=(0.4, 1.0, 0.2))
    mesh.apply_translation([3.0, -2.0, 5.0])
    placed = place(mesh, Origin.center, height_m=1.8)
    lower, upper = placed.bounds
    np.testing.assert_allclose((lower + upper) / 2, 0.0, atol=1e-12)
    np.testing.assert_allclose(upper - lower, [0.72, 1.8, 0.36])  # scaled evenly to 1.8 m tall
