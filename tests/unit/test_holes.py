"""Hole filling: open meshes come out of cleaning closed, oriented, and coloured."""

from __future__ import annotations

import numpy as np
import trimesh

from postprocess_service.cleaning import clean_mesh
from postprocess_service.holes import boundary_loops, fill_holes


def sphere_with_holes() -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=3)
    sphere.visual.vertex_colors = (30, 90, 200, 255)
    keep = np.ones(len(sphere.faces), dtype=bool)
    keep[[0, 200, 201, 640]] = False  # one single-face hole, one two-face hole, another single
    return trimesh.Trimesh(
        sphere.vertices, sphere.faces[keep], vertex_colors=sphere.visual.vertex_colors, process=False
    )


def test_boundary_loops_are_found_for_each_hole() -> None:
    mesh = sphere_with_holes()
    assert not mesh.is_watertight
    assert sorted(len(loop) for loop in boundary_loops(mesh)) in ([3, 3, 4], [3, 3, 3, 3])


def test_filled_mesh_is_watertight_with_consistent_winding() -> None:
    mesh = sphere_with_holes()
    filled = fill_holes(mesh)
    assert filled >= 3
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0


def test_fill_colours_match_the_surrounding_surface() -> None:
    mesh = sphere_with_holes()
    fill_holes(mesh)
    assert np.all(mesh.visual.vertex_colors[:, :3] == (30, 90, 200))


def test_cleaning_closes_holes_unless_asked_not_to() -> None:
    assert clean_mesh(sphere_with_holes()).is_watertight
    assert not clean_mesh(sphere_with_holes(), close_holes=False).is_watertight


def test_closed_mesh_is_left_alone() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    faces_before = len(mesh.faces)
    assert fill_holes(mesh) == 0
    assert len(mesh.faces) == faces_before
