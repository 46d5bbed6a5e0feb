"""Writing the final asset (postprocess_service.export): formats, colours, atomic writes, clear refusals."""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from meshforge.errors import BackendError, InvalidInput, UnsupportedFormat
from meshforge.geometry.colour import linear_to_srgb
from postprocess_service.cleaning import load_mesh
from postprocess_service.export import FBX_UNAVAILABLE, SUPPORTED_FORMATS, check_format, export_mesh


def coloured_sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    rgb = np.clip((mesh.vertices + 0.5) * 255, 0, 255)
    colours = np.column_stack([rgb, np.full(len(mesh.vertices), 255)]).astype(np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=colours)
    return mesh


def read_back(path: Path) -> trimesh.Trimesh:
    loaded = trimesh.load(path)
    return loaded.to_mesh() if isinstance(loaded, trimesh.Scene) else loaded


def assert_same_coloured_surface(written: trimesh.Trimesh, read: trimesh.Trimesh, *, linear: bool) -> None:
    assert len(read.faces) == len(written.faces)
    assert read.visual.kind == "vertex"
    # Loaders may reorder or re-weld vertices, so match them by position before comparing colours.
    order = [int(np.argmin(np.linalg.norm(written.vertices - v, axis=1))) for v in read.vertices]
    assert np.allclose(read.vertices, written.vertices[order], atol=1e-6)
    expected = written.visual.vertex_colors[order, :3].astype(int)
    shown = np.asarray(read.visual.vertex_colors)
    if linear:  # a GLB's COLOR_0 is linear light; a viewer shows it converted back to sRGB
        shown = linear_to_srgb(shown)
    # 8-bit linear values are coarse in the darks: one linear step there spans several sRGB steps.
    assert np.abs(shown[:, :3].astype(int) - expected).max() <= (6 if linear else 1)


def glb_json(path: Path) -> dict:
    data = path.read_bytes()
    (chunk_length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + chunk_length])


def test_glb_round_trip_keeps_vertex_colours(tmp_path: Path) -> None:
    mesh = coloured_sphere()
    path = export_mesh(mesh, tmp_path / "asset.glb", "glb")
    assert path == tmp_path / "asset.glb"
    attributes = glb_json(path)["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "NORMAL", "COLOR_0"} <= set(attributes)
    assert_same_coloured_surface(mesh, read_back(path), linear=True)


def test_obj_round_trip_keeps_vertex_colours(tmp_path: Path) -> None:
    mesh = coloured_sphere()
    path = export_mesh(mesh, tmp_path / "asset.obj", "obj")
    assert [p.name for p in tmp_path.iterdir()] == ["asset.obj"]  # one file: no .mtl, no texture
    first_vertex = next(line for line in path.read_text().splitlines() if line.startswith("v "))
    assert len(first_vertex.split()) == 7  # v x y z r g b
    assert_same_coloured_surface(mesh, read_back(path), linear=False)


@pytest.mark.parametrize("output_format", ["glb", "obj"])
def test_exported_asset_loads_back_through_load_mesh(tmp_path: Path, output_format: str) -> None:
    mesh = coloured_sphere()
    path = export_mesh(mesh, tmp_path / f"asset.{output_format}", output_format)
    loaded = load_mesh(path)
    assert len(loaded.faces) == len(mesh.faces)
    assert loaded.visual.kind == "vertex"


@pytest.mark.parametrize("output_format", ["fbx", "FBX", ".fbx"])
def test_fbx_request_raises_unsupported_format_and_writes_nothing(tmp_path: Path, output_format: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        export_mesh(coloured_sphere(), tmp_path / "asset.fbx", output_format)
    assert caught.value.message == FBX_UNAVAILABLE
    assert 'Ask for "glb" or "obj".' in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_message_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match=re.escape('"usdz" is not an export format')) as caught:
        export_mesh(coloured_sphere(), tmp_path / "asset.usdz", "usdz")
    assert all(f'"{name}"' in caught.value.message for name in SUPPORTED_FORMATS)
    assert list(tmp_path.iterdir()) == []


def test_format_names_are_normalised() -> None:
    assert check_format(" GLB ") == "glb"
    assert check_format(".obj") == "obj"
    assert frozenset({"glb", "obj"}) == SUPPORTED_FORMATS


def test_an_existing_asset_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "asset.glb"
    path.write_bytes(b"an older asset")
    export_mesh(coloured_sphere(), path, "glb")
    assert path.read_bytes()[:4] == b"glTF"
    assert [p.name for p in tmp_path.iterdir()] == ["asset.glb"]  # no temporary file left behind


def test_failed_write_leaves_nothing_under_the_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(source: str, target: str | Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(
        BackendError, match=re.escape('the asset "asset.glb" could not be written: No space left')
    ):
        export_mesh(coloured_sphere(), tmp_path / "asset.glb", "glb")
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder_is_created(tmp_path: Path) -> None:
    path = export_mesh(coloured_sphere(), tmp_path / "job-1" / "asset.obj", "obj")
    assert path.is_file()


def test_loader_metadata_stays_out_of_the_asset(tmp_path: Path) -> None:
    mesh = coloured_sphere()
    # What a loader can leave on a mesh; the glTF exporter would copy it into the file's extras.
    mesh.metadata.update({"file_path": "/srv/meshforge/cache/job-1/raw.ply", "file_name": "raw.ply"})
    path = export_mesh(mesh, tmp_path / "asset.glb", "glb")
    document = json.dumps(glb_json(path))
    assert "/srv/meshforge" not in document
    assert "raw.ply" not in document


def test_uncoloured_mesh_exports_without_colours(tmp_path: Path) -> None:
    path = export_mesh(trimesh.creation.box(), tmp_path / "asset.glb", "glb")
    attributes = glb_json(path)["meshes"][0]["primitives"][0]["attributes"]
    assert "COLOR_0" not in attributes


def test_mesh_without_faces_raises_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="nothing to export"):
        export_mesh(trimesh.Trimesh(), tmp_path / "asset.glb", "glb")
    assert list(tmp_path.iterdir()) == []
