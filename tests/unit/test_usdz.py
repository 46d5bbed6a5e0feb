"""USDZ export (postprocess_service.export, "usdz"; written by postprocess_service.usdz): the package
re-opens with USD with the same mesh, stage metadata, a textured UsdPreviewSurface whose texture is
inside the package, and passes USD's validators and the ARKit packaging rules."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from pxr import Sdf, Usd, UsdGeom, UsdShade, UsdValidation

from postprocess_service.export import export_mesh
from postprocess_service.texturing import bake_vertex_colours
from tests.meshes import coloured_sphere

# What ARKit (AR Quick Look) accepts, after the rules of USD's former ComplianceChecker(arkit=True).
# usd-core 26 has dropped that checker for UsdValidation, which has no ARKit suite, so these rules are
# checked here directly.
ARKIT_FILE_SUFFIXES = {".usda", ".usdc", ".usd", ".usdz", ".png", ".jpg", ".jpeg", ".m4a", ".mp3", ".wav"}
ARKIT_PRIM_TYPES = {"", "Scope", "Xform", "Camera", "Shader", "Material", "Mesh", "GeomSubset"}
ARKIT_SHADER_IDS = {"UsdPreviewSurface", "UsdUVTexture", "UsdTransform2d"}


def textured_sphere() -> trimesh.Trimesh:
    return bake_vertex_colours(coloured_sphere(), 256)


def only_mesh(stage: Usd.Stage) -> UsdGeom.Mesh:
    (mesh,) = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    return mesh


def surface_shader(mesh: UsdGeom.Mesh) -> UsdShade.Shader:
    material, _ = UsdShade.MaterialBindingAPI(mesh.GetPrim()).ComputeBoundMaterial()
    assert material, "the mesh has no bound material"
    shader = material.ComputeSurfaceSource()[0]
    assert shader.GetIdAttr().Get() == "UsdPreviewSurface"
    return shader


def connected_shader(shader: UsdShade.Shader, input_name: str) -> UsdShade.Shader:
    (connection,) = shader.GetInput(input_name).GetConnectedSources()[0]
    return UsdShade.Shader(connection.source.GetPrim())


def validation_errors(stage: Usd.Stage) -> list[str]:
    """Every error USD's registered validators (core, geometry, shading, USDZ packaging) report."""
    registry = UsdValidation.ValidationRegistry()
    context = UsdValidation.ValidationContext(registry.GetOrLoadAllValidators())
    return [
        error.GetErrorAsString()
        for error in context.Validate(stage)
        if error.GetType() == UsdValidation.ValidationErrorType.Error
    ]


def arkit_failures(path: Path, stage: Usd.Stage) -> list[str]:
    failures = []
    with zipfile.ZipFile(path) as package:
        infos = package.infolist()
    if Path(infos[0].filename).suffix != ".usdc":
        failures.append(f"the package's root layer is {infos[0].filename}, not a .usdc file")
    for info in infos:
        if Path(info.filename).suffix.lower() not in ARKIT_FILE_SUFFIXES:
            failures.append(f"{info.filename}: file type not allowed by ARKit")
        if info.compress_type != zipfile.ZIP_STORED:
            failures.append(f"{info.filename}: compressed; USDZ files are stored")
    for prim in stage.Traverse():
        if prim.GetTypeName() not in ARKIT_PRIM_TYPES:
            failures.append(f"{prim.GetPath()}: prim type {prim.GetTypeName()} not allowed by ARKit")
        if prim.IsA(UsdShade.Shader):
            shader_id = UsdShade.Shader(prim).GetIdAttr().Get()
            if shader_id not in ARKIT_SHADER_IDS and not shader_id.startswith("UsdPrimvarReader_"):
                failures.append(f"{prim.GetPath()}: shader {shader_id} not allowed by ARKit")
        if UsdShade.MaterialBindingAPI(prim).GetCollectionBindingRels():
            failures.append(f"{prim.GetPath()}: collection-based material binding, ARKit wants direct")
    return failures


@pytest.fixture
def exported(tmp_path: Path) -> tuple[trimesh.Trimesh, Path]:
    mesh = textured_sphere()
    return mesh, export_mesh(mesh, tmp_path / "asset.usdz", "usdz")


def test_usdz_holds_the_same_triangles_up_y_in_metres(exported: tuple[trimesh.Trimesh, Path]) -> None:
    mesh, path = exported
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().IsValid()
    geometry = only_mesh(stage)
    points = np.asarray(geometry.GetPointsAttr().Get())
    assert len(points) == len(mesh.vertices)
    assert np.allclose(points, mesh.vertices, atol=1e-6)
    counts = np.asarray(geometry.GetFaceVertexCountsAttr().Get())
    assert len(counts) == len(mesh.faces)
    assert set(counts.tolist()) == {3}
    assert np.array_equal(np.asarray(geometry.GetFaceVertexIndicesAttr().Get()).reshape(-1, 3), mesh.faces)
    assert len(geometry.GetNormalsAttr().Get()) == len(mesh.vertices)
    st = UsdGeom.PrimvarsAPI(geometry).GetPrimvar("st")
    assert st.GetInterpolation() == UsdGeom.Tokens.vertex
    assert np.allclose(np.asarray(st.Get()), mesh.visual.uv, atol=1e-6)  # v = 0 at the bottom in both


def test_usdz_material_reads_its_diffuse_colour_from_a_texture_inside_the_package(
    exported: tuple[trimesh.Trimesh, Path],
) -> None:
    mesh, path = exported
    stage = Usd.Stage.Open(str(path))
    surface = surface_shader(only_mesh(stage))
    assert surface.GetInput("metallic").Get() == 0.0
    assert surface.GetInput("roughness").Get() == pytest.approx(0.9)
    texture = connected_shader(surface, "diffuseColor")
    assert texture.GetIdAttr().Get() == "UsdUVTexture"
    assert texture.GetInput("sourceColorSpace").Get() == "sRGB"
    reader = connected_shader(texture, "st")
    assert reader.GetIdAttr().Get() == "UsdPrimvarReader_float2"
    assert reader.GetInput("varname").Get() == "st"
    file: Sdf.AssetPath = texture.GetInput("file").Get()
    assert file.resolvedPath.startswith(f"{path}[")  # resolved inside the package, not beside it
    with zipfile.ZipFile(path) as package:
        png = package.read(file.path)
    with Image.open(io.BytesIO(png)) as image:
        assert np.array_equal(np.asarray(image), np.asarray(mesh.visual.material.baseColorTexture))


def test_usdz_passes_usd_validators_and_arkit_rules(exported: tuple[trimesh.Trimesh, Path]) -> None:
    _, path = exported
    stage = Usd.Stage.Open(str(path))
    errors = validation_errors(stage)
    assert not errors, "USD validation errors:\n" + "\n".join(errors)
    failures = arkit_failures(path, stage)
    assert not failures, "ARKit rule failures:\n" + "\n".join(failures)


def test_usdz_is_an_uncompressed_zip_with_the_layer_first_and_64_byte_aligned_files(
    exported: tuple[trimesh.Trimesh, Path],
) -> None:
    _, path = exported
    with zipfile.ZipFile(path) as package:
        infos = package.infolist()
        with path.open("rb") as raw:
            for info in infos:
                # Data begins after the 30-byte local header, its name and its extra field.
                raw.seek(info.header_offset + 26)
                name_length, extra_length = struct.unpack("<HH", raw.read(4))
                assert (info.header_offset + 30 + name_length + extra_length) % 64 == 0, info.filename
    assert [Path(i.filename).suffix for i in infos] == [".usdc", ".png"]
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}


def test_untextured_mesh_keeps_its_colours_as_display_colour(tmp_path: Path) -> None:
    mesh = coloured_sphere()
    path = export_mesh(mesh, tmp_path / "asset.usdz", "usdz")
    stage = Usd.Stage.Open(str(path))
    geometry = only_mesh(stage)
    assert len(geometry.GetFaceVertexCountsAttr().Get()) == len(mesh.faces)
    colours = geometry.GetDisplayColorPrimvar()
    assert colours.GetInterpolation() == UsdGeom.Tokens.vertex
    assert len(colours.Get()) == len(mesh.vertices)
    reader = connected_shader(surface_shader(geometry), "diffuseColor")
    assert reader.GetInput("varname").Get() == "displayColor"
    errors = validation_errors(stage)
    assert not errors, "USD validation errors:\n" + "\n".join(errors)


def test_usdz_is_written_whole_with_no_temporary_files_left(tmp_path: Path) -> None:
    path = tmp_path / "asset.usdz"
    path.write_bytes(b"an older asset")
    export_mesh(textured_sphere(), path, "usdz")
    assert path.read_bytes()[:2] == b"PK"
    assert [p.name for p in tmp_path.iterdir()] == ["asset.usdz"]
