"""Write the finished mesh as a USDZ package, for Apple AR Quick Look.

A USDZ is an uncompressed zip whose first file is the USD layer, followed by what that layer reads
(here the base-colour PNG), each aligned so a device can map it without unpacking. USD's own packager
(``UsdUtils.CreateNewARKitUsdzPackage``) writes it: the layer and the texture are first authored in a
temporary folder, then packaged, and the package's bytes handed back for the caller's atomic write.

The layer holds, under the default prim ``/Asset``:
- ``Mesh``: a UsdGeom.Mesh of triangles with points, vertex normals and, when textured, vertex ``st``
  texture coordinates (v = 0 is the bottom row of the image, as in trimesh and OBJ: no flip);
- ``Looks/Material``: a UsdPreviewSurface fed by a UsdUVTexture that reads the PNG (sRGB) at the
  ``st`` a UsdPrimvarReader_float2 supplies; metallic and roughness as the GLB's material.
An untextured mesh carries its colours as ``primvars:displayColor`` (linear, as USD colours are), read
by a UsdPrimvarReader_float3 into the surface's diffuse colour.

The stage is +Y up with 1 unit = 1 metre, as every asset of this service is placed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

from meshforge.errors import BackendError
from meshforge.geometry.colour import srgb_to_linear
from meshforge.geometry.visuals import texture_visual

ROOT = Sdf.Path("/Asset")
MESH = ROOT.AppendChild("Mesh")
MATERIAL = ROOT.AppendChild("Looks").AppendChild("Material")
LAYER_NAME = "asset.usdc"  # ARKit wants the package's root layer in the binary crate format
TEXTURE_NAME = "textures/base_colour.png"
PRIMVAR_ST = "st"
DEFAULT_METALLIC = 0.0
DEFAULT_ROUGHNESS = 0.9


def encode_usdz(
    mesh: trimesh.Trimesh,
    texture_png: bytes | None,
    colours: np.ndarray | None = None,
) -> bytes:
    """The bytes of a USDZ package of ``mesh``.

    With ``texture_png`` the mesh must carry per-vertex UVs (``mesh.visual.uv``) and its material's
    ``metallicFactor``/``roughnessFactor`` are used; without, ``colours`` (sRGB uint8 per vertex, or
    None for none) become the display colour.
    """
    with tempfile.TemporaryDirectory(prefix="meshforge-usdz-") as folder:
        layer = Path(folder) / LAYER_NAME
        stage = Usd.Stage.CreateNew(str(layer))
        _author_stage(stage, mesh, texture_png, colours, Path(folder))
        stage.GetRootLayer().Save()
        package = Path(folder) / "asset.usdz"
        if not UsdUtils.CreateNewARKitUsdzPackage(Sdf.AssetPath(str(layer)), str(package)):
            raise BackendError("USD's packager could not write the USDZ package")
        return package.read_bytes()


def _author_stage(
    stage: Usd.Stage,
    mesh: trimesh.Trimesh,
    texture_png: bytes | None,
    colours: np.ndarray | None,
    folder: Path,
) -> None:
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, ROOT).GetPrim()
    stage.SetDefaultPrim(root)
    Usd.ModelAPI(root).SetKind(Kind.Tokens.component)  # one self-contained asset: what AR places

    geometry = _define_mesh(stage, mesh)
    if texture_png is not None:
        (folder / TEXTURE_NAME).parent.mkdir(parents=True, exist_ok=True)
        (folder / TEXTURE_NAME).write_bytes(texture_png)
        visual = texture_visual(mesh)
        UsdGeom.PrimvarsAPI(geometry).CreatePrimvar(
            PRIMVAR_ST, Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex
        ).Set(_vec_array(Vt.Vec2fArray, visual.uv))
        material = _textured_material(stage, visual.material)
    else:
        if colours is not None:
            linear = srgb_to_linear(np.asarray(colours)[:, :3]) / 255.0
            geometry.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex).Set(_vec_array(Vt.Vec3fArray, linear))
        material = _display_colour_material(stage, has_colours=colours is not None)
    binding = UsdShade.MaterialBindingAPI.Apply(geometry.GetPrim())
    binding.Bind(material)


def _define_mesh(stage: Usd.Stage, mesh: trimesh.Trimesh) -> UsdGeom.Mesh:
    geometry = UsdGeom.Mesh.Define(stage, MESH)
    points = _vec_array(Vt.Vec3fArray, mesh.vertices)
    geometry.CreatePointsAttr(points)
    geometry.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(mesh.faces), 3, np.int32)))
    indices = np.ascontiguousarray(mesh.faces, dtype=np.int32).ravel()
    geometry.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(indices))
    geometry.CreateNormalsAttr(_vec_array(Vt.Vec3fArray, mesh.vertex_normals))
    geometry.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    # Triangles with smooth vertex normals as authored: no subdivision surface on top.
    geometry.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    geometry.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)  # counter-clockwise faces face outwards
    geometry.CreateDoubleSidedAttr(False)
    geometry.CreateExtentAttr(UsdGeom.PointBased.ComputeExtent(points))
    return geometry


def _textured_material(stage: Usd.Stage, source: object) -> UsdShade.Material:
    material, surface = _preview_surface(stage, source)
    reader = UsdShade.Shader.Define(stage, MATERIAL.AppendChild("StReader"))
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set(PRIMVAR_ST)
    reader.CreateOutput("result", Sdf.ValueTypeNames.Float2)

    texture = UsdShade.Shader.Define(stage, MATERIAL.AppendChild("BaseColour"))
    texture.CreateIdAttr("UsdUVTexture")
    texture.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(Sdf.AssetPath(TEXTURE_NAME))
    texture.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
    texture.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
    # UVs lie in [0, 1]; clamping keeps bilinear reads at the atlas border off the opposite edge.
    texture.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("clamp")
    texture.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("clamp")
    texture.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(
        texture.ConnectableAPI(), "rgb"
    )
    return material


def _display_colour_material(stage: Usd.Stage, *, has_colours: bool) -> UsdShade.Material:
    material, surface = _preview_surface(stage, None)
    diffuse = surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f)
    if not has_colours:
        diffuse.Set(Gf.Vec3f(0.58, 0.58, 0.58))  # linear value of the light grey untextured meshes get
        return material
    reader = UsdShade.Shader.Define(stage, MATERIAL.AppendChild("ColourReader"))
    reader.CreateIdAttr("UsdPrimvarReader_float3")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("displayColor")
    reader.CreateOutput("result", Sdf.ValueTypeNames.Float3)
    diffuse.ConnectToSource(reader.ConnectableAPI(), "result")
    return material


def _preview_surface(stage: Usd.Stage, source: object) -> tuple[UsdShade.Material, UsdShade.Shader]:
    UsdGeom.Scope.Define(stage, MATERIAL.GetParentPath())
    material = UsdShade.Material.Define(stage, MATERIAL)
    surface = UsdShade.Shader.Define(stage, MATERIAL.AppendChild("PreviewSurface"))
    surface.CreateIdAttr("UsdPreviewSurface")
    metallic = getattr(source, "metallicFactor", None)
    roughness = getattr(source, "roughnessFactor", None)
    surface.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(
        float(DEFAULT_METALLIC if metallic is None else metallic)
    )
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(
        float(DEFAULT_ROUGHNESS if roughness is None else roughness)
    )
    surface.CreateOutput("surface", Sdf.ValueTypeNames.Token)
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    return material, surface


def _vec_array(kind: Any, values: np.ndarray) -> object:
    """``values`` as an array of pxr.Vt class ``kind`` (Vt.Vec2fArray, Vt.Vec3fArray, ...)."""
    return kind.FromNumpy(np.ascontiguousarray(values, dtype=np.float32))
