"""Writing the final asset (postprocess_service.export): formats, textures and colours, atomic writes,
clear refusals."""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from meshforge.errors import BackendError, InvalidInput, StorageFull, UnsupportedFormat
from meshforge.geometry.colour import linear_to_srgb
from postprocess_service.cleaning import load_mesh
from postprocess_service.export import (
    FBX_UNAVAILABLE,
    SUPPORTED_FORMATS,
    check_format,
    export_mesh,
    obj_stem,
)
from postprocess_service.texturing import bake_vertex_colours
from tests.gltf_validator import assert_valid_glb
from tests.meshes import coloured_sphere


def textured_sphere() -> trimesh.Trimesh:
    return bake_vertex_colours(coloured_sphere(), 256)


def unzipped(path: Path, folder: Path) -> list[str]:
    """Unpack the zip at ``path`` into ``folder``; the names it held, in order."""
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
        return archive.namelist()


def only_geometry(path: Path) -> trimesh.Trimesh:
    """The one mesh in a GLB as stored: no merging, no recomputed normals."""
    (geometry,) = trimesh.load(path, process=False).geometry.values()
    return geometry


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


def test_obj_zip_of_a_vertex_coloured_mesh_holds_the_obj_alone_with_its_colours(tmp_path: Path) -> None:
    mesh = coloured_sphere()
    path = export_mesh(mesh, tmp_path / "asset.obj.zip", "obj")
    assert [p.name for p in tmp_path.iterdir()] == ["asset.obj.zip"]
    assert unzipped(path, tmp_path / "unzipped") == ["asset.obj"]  # no .mtl, no texture
    obj = tmp_path / "unzipped" / "asset.obj"
    first_vertex = next(line for line in obj.read_text().splitlines() if line.startswith("v "))
    assert len(first_vertex.split()) == 7  # v x y z r g b
    assert_same_coloured_surface(mesh, read_back(obj), linear=False)


def test_obj_zip_holds_obj_mtl_and_png_and_reimports_with_its_material(tmp_path: Path) -> None:
    mesh = textured_sphere()
    path = export_mesh(mesh, tmp_path / "chair-7.obj.zip", "obj")
    assert [p.name for p in tmp_path.iterdir()] == ["chair-7.obj.zip"]
    folder = tmp_path / "unzipped"
    assert sorted(unzipped(path, folder)) == ["chair-7.mtl", "chair-7.obj", "chair-7.png"]
    obj_lines = (folder / "chair-7.obj").read_text().splitlines()
    assert "mtllib chair-7.mtl" in obj_lines
    assert "usemtl chair-7" in obj_lines
    assert "map_Kd chair-7.png" in (folder / "chair-7.mtl").read_text().splitlines()
    with Image.open(folder / "chair-7.png") as png:
        assert png.size == (256, 256)
    loaded = trimesh.load(folder / "chair-7.obj", process=False)
    assert len(loaded.faces) == len(mesh.faces)
    assert isinstance(loaded.visual, trimesh.visual.TextureVisuals)
    assert np.asarray(loaded.visual.material.image).shape == (256, 256, 3)
    assert np.allclose(loaded.visual.uv, mesh.visual.uv, atol=1e-6)
    # Read through the texture, the surface shows the colours that were baked into it.
    shown = loaded.visual.to_color().vertex_colors[:, :3].astype(int)
    assert np.abs(shown - mesh.visual.to_color().vertex_colors[:, :3].astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("name", "stem"),
    [("job-1.obj.zip", "job-1"), ("job-1.OBJ.ZIP", "job-1"), ("job-1.zip", "job-1"), ("job-1.obj", "job-1")],
)
def test_files_in_the_obj_zip_are_named_after_the_asset(name: str, stem: str) -> None:
    assert obj_stem(Path("outputs") / name) == stem


@pytest.mark.parametrize("output_format", ["glb", "obj"])
def test_exported_asset_loads_back_through_load_mesh(tmp_path: Path, output_format: str) -> None:
    mesh = coloured_sphere()
    name = "asset.obj.zip" if output_format == "obj" else "asset.glb"
    path = export_mesh(mesh, tmp_path / name, output_format)
    if output_format == "obj":
        unzipped(path, tmp_path)
        path = tmp_path / "asset.obj"
    loaded = load_mesh(path)
    assert len(loaded.faces) == len(mesh.faces)
    assert loaded.visual.kind == "vertex"


def test_textured_glb_has_texture_material_and_uvs(tmp_path: Path) -> None:
    mesh = textured_sphere()
    path = export_mesh(mesh, tmp_path / "asset.glb", "glb")
    document = glb_json(path)
    primitive = document["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(primitive["attributes"])
    assert "COLOR_0" not in primitive["attributes"]  # the texture carries the colours
    pbr = document["materials"][primitive["material"]]["pbrMetallicRoughness"]
    texture = document["textures"][pbr["baseColorTexture"]["index"]]
    assert document["images"][texture["source"]]["mimeType"] == "image/png"
    assert pbr["metallicFactor"] == 0.0
    assert pbr["roughnessFactor"] == pytest.approx(0.9)
    loaded = only_geometry(path)
    assert np.asarray(loaded.visual.material.baseColorTexture).shape == (256, 256, 3)
    assert np.allclose(loaded.visual.uv, mesh.visual.uv, atol=1e-6)


def test_textured_glb_shades_smoothly_across_uv_seams(tmp_path: Path) -> None:
    mesh = textured_sphere()
    path = export_mesh(mesh, tmp_path / "asset.glb", "glb")
    loaded = only_geometry(path)
    normals = np.asarray(loaded.vertex_normals)
    # The copies of a vertex split along a seam carry one and the same normal.
    _, welded = np.unique(np.round(loaded.vertices, 6), axis=0, return_inverse=True)
    welded = welded.reshape(-1)
    assert len(np.unique(welded)) < len(loaded.vertices)
    first = np.zeros((welded.max() + 1, 3))
    first[welded] = normals
    assert np.allclose(normals, first[welded], atol=1e-6)


def test_stl_round_trip_keeps_geometry(tmp_path: Path) -> None:
    mesh = textured_sphere()
    path = export_mesh(mesh, tmp_path / "asset.stl", "stl")
    data = path.read_bytes()
    # Binary STL: an 80-byte header, the triangle count, then 50 bytes per triangle.
    (count,) = struct.unpack_from("<I", data, 80)
    assert count == len(mesh.faces)
    assert len(data) == 84 + 50 * count
    loaded = trimesh.load(path, process=False)
    assert np.allclose(loaded.triangles, mesh.triangles, atol=1e-6)
    assert loaded.visual.kind is None  # STL has no place for colours


@pytest.mark.parametrize("output_format", ["fbx", "FBX", ".fbx"])
def test_fbx_request_raises_unsupported_format_and_writes_nothing(tmp_path: Path, output_format: str) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        export_mesh(coloured_sphere(), tmp_path / "asset.fbx", output_format)
    assert caught.value.message == FBX_UNAVAILABLE
    assert 'Ask for "glb", "obj", "stl" or "usdz".' in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_message_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match=re.escape('"3mf" is not an export format')) as caught:
        export_mesh(coloured_sphere(), tmp_path / "asset.3mf", "3mf")
    assert all(f'"{name}"' in caught.value.message for name in SUPPORTED_FORMATS)
    assert list(tmp_path.iterdir()) == []


def test_format_names_are_normalised() -> None:
    assert check_format(" GLB ") == "glb"
    assert check_format(".obj") == "obj"
    assert check_format("Stl") == "stl"
    assert check_format("USDZ") == "usdz"
    assert frozenset({"glb", "obj", "stl", "usdz"}) == SUPPORTED_FORMATS


def test_an_existing_asset_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "asset.glb"
    path.write_bytes(b"an older asset")
    export_mesh(coloured_sphere(), path, "glb")
    assert path.read_bytes()[:4] == b"glTF"
    assert [p.name for p in tmp_path.iterdir()] == ["asset.glb"]  # no temporary file left behind


def test_failed_write_leaves_nothing_under_the_final_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(code: int) -> Callable[[str, str | Path], None]:
        def replace(source: str, target: str | Path) -> None:
            raise OSError(code, os.strerror(code))

        return replace

    monkeypatch.setattr(os, "replace", failing(5))  # EIO
    with pytest.raises(
        BackendError, match=re.escape('the asset "asset.glb" could not be written: Input/output error')
    ):
        export_mesh(coloured_sphere(), tmp_path / "asset.glb", "glb")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(os, "replace", failing(28))  # ENOSPC: the typed error the job shows
    with pytest.raises(StorageFull, match=re.escape("no space left on the server (writing asset.glb)")):
        export_mesh(coloured_sphere(), tmp_path / "asset.glb", "glb")
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder_is_created(tmp_path: Path) -> None:
    path = export_mesh(coloured_sphere(), tmp_path / "job-1" / "asset.obj.zip", "obj")
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


@pytest.mark.parametrize("textured", [False, True])
def test_unused_vertices_never_make_an_invalid_glb(tmp_path: Path, textured: bool) -> None:
    mesh = coloured_sphere()
    mesh = trimesh.Trimesh(
        vertices=np.vstack([mesh.vertices, [[5.0, 5.0, 5.0]]]),
        faces=mesh.faces,
        vertex_colors=np.vstack([mesh.visual.vertex_colors, [[0, 0, 0, 255]]]),
        process=False,
    )
    if textured:
        mesh = bake_vertex_colours(mesh, 64)
    assert_valid_glb(export_mesh(mesh, tmp_path / "asset.glb", "glb"))
