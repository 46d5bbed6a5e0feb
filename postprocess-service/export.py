"""Write the finished mesh as the asset file a person downloads.

Only formats this build can write faithfully are offered: a request for anything else fails before a
byte is written, so no file with the wrong content ever appears under an asset's name. Files are
written to a temporary name in the same folder and renamed, so readers never see half an asset.

- **glb**: a textured mesh (see ``texturing``) becomes positions, normals, TEXCOORD_0 and a PBR
  metallic-roughness material with its base-colour texture embedded as PNG; an untextured mesh keeps
  its vertex colours as linear COLOR_0.
- **obj**: delivered as one zip. A textured OBJ is three files (geometry, material library, image)
  that only work side by side, while a download is one request and a job has one asset file under
  outputs/. The zip at ``path`` (normally ``<stem>.obj.zip``) holds ``<stem>.obj``, ``<stem>.mtl``
  and ``<stem>.png``, referenced by relative name so they work wherever the zip is unpacked. An
  untextured mesh zips its ``<stem>.obj`` alone, with colours on the vertex lines (``v x y z r g b``).
- **stl**: binary STL, for 3D printing. The format has no colour, so colours and textures are dropped.
- **usdz**: a USDZ package for Apple AR Quick Look (see ``usdz``): the same mesh, normals and UVs as
  the GLB, a UsdPreviewSurface material and its base-colour PNG inside the package.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from meshforge.errors import BackendError, InvalidInput, UnsupportedFormat
from meshforge.geometry.colour import srgb_to_linear
from meshforge.geometry.visuals import colour_visual, texture_visual
from meshforge.images import encode_png
from meshforge.storage import atomic_write_bytes
from postprocess_service.cleaning import vertex_colours
from postprocess_service.usdz import encode_usdz

SUPPORTED_FORMATS: frozenset[str] = frozenset({"glb", "obj", "stl", "usdz"})

FBX_UNAVAILABLE = (
    "FBX is not written by this exporter, which writes glb, obj, stl and usdz: FBX goes through headless "
    'Blender (postprocess_service.blender). Ask for "glb", "obj", "stl" or "usdz".'
)
HEADER = "meshforge"
_OBJ_SUFFIXES = (".obj.zip", ".zip", ".obj")


def export_mesh(mesh: trimesh.Trimesh, path: Path, output_format: str) -> Path:
    """Write ``mesh`` to ``path`` as glb, zipped obj, stl or usdz, with its texture or vertex colours where
    the format has room for them; returns the path written."""
    output_format = check_format(output_format)
    if len(mesh.faces) == 0:
        raise InvalidInput("there is nothing to export: the mesh has no triangles")
    path = Path(path)
    try:
        payload = _ENCODERS[output_format](_asset_mesh(mesh), path)
    except Exception as exc:  # an encoder failing on valid geometry is our fault, not the requester's
        raise BackendError(f"the mesh could not be encoded as {output_format.upper()}: {exc}") from exc
    _write_atomically(path, payload)
    return path


def format_name(output_format: str) -> str:
    """The format a name means: "GLB", " glb" and ".glb" all mean glb."""
    return output_format.strip().lower().lstrip(".")


def check_format(output_format: str) -> str:
    """The normalised format name ("GLB" and ".glb" give "glb"); UnsupportedFormat for anything else.

    Cheap, so a caller can reject a request before spending time on the mesh.
    """
    normalised = format_name(output_format)
    if normalised in SUPPORTED_FORMATS:
        return normalised
    if normalised == "fbx":
        raise UnsupportedFormat(FBX_UNAVAILABLE)
    *others, last = (f'"{name}"' for name in sorted(SUPPORTED_FORMATS))
    supported = f"{', '.join(others)} or {last}" if others else last
    raise UnsupportedFormat(
        f'"{output_format}" is not an export format of this build: the post-processing stage exports '
        f"{supported}."
    )


def texture_image(mesh: trimesh.Trimesh) -> Image.Image | None:
    """The base-colour image of a UV-mapped mesh, or None when the mesh carries no texture."""
    visual = mesh.visual
    if not isinstance(visual, trimesh.visual.TextureVisuals) or visual.uv is None:
        return None
    if len(visual.uv) != len(mesh.vertices):
        return None
    material = visual.material
    # PBRMaterial keeps it as baseColorTexture, SimpleMaterial (e.g. loaded from an OBJ) as image.
    for attribute in ("baseColorTexture", "image"):
        image = getattr(material, attribute, None)
        if isinstance(image, Image.Image):
            return image
    return None


def _asset_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Geometry with its texture or vertex colours, and nothing else.

    The glTF exporter copies ``mesh.metadata`` into the file's extras, which could carry loader
    details (server file paths, a PLY's raw arrays) into the user's asset or fail to serialise.
    Unused vertices are dropped: their zero-length normals make a GLB invalid.
    """
    if texture_image(mesh) is None:
        asset = trimesh.Trimesh(
            vertices=mesh.vertices, faces=mesh.faces, vertex_colors=vertex_colours(mesh), process=False
        )
    else:
        textured = texture_visual(mesh)
        asset = trimesh.Trimesh(
            vertices=mesh.vertices,
            faces=mesh.faces,
            vertex_normals=_welded_normals(mesh),
            visual=trimesh.visual.TextureVisuals(uv=textured.uv, material=textured.material),
            process=False,
        )
    asset.remove_unreferenced_vertices()
    return asset


def _welded_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """Vertex normals computed as if the copies of a vertex split along a UV seam were one vertex.

    Normals of the split copies, each from the faces on its own side only, would differ and show
    every seam as a crease.
    """
    vertices = np.asarray(mesh.vertices)
    # Copies are bit-for-bit equal: sort the rows and number each run of equal ones (about twice as
    # fast as np.unique over rows, which sorts them as opaque byte strings).
    order = np.lexsort(vertices.T[::-1])
    ordered = vertices[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    welded = np.empty(len(order), dtype=np.int64)
    welded[order] = np.cumsum(starts) - 1
    surface = trimesh.Trimesh(vertices=ordered[starts], faces=welded[mesh.faces], process=False)
    return surface.vertex_normals[welded]


# -------------------------------------------------------------------------------------------- encoders


def _encode_glb(mesh: trimesh.Trimesh, path: Path) -> bytes:
    # Normals are written because glTF viewers must shade a primitive without them flat, which makes a
    # smooth marching-cubes surface look faceted. COLOR_0 is linear light by the glTF specification,
    # while our colours are sRGB (they come from images): written unconverted they look washed out.
    # A base-colour texture, in contrast, is sRGB by the specification, so a textured mesh goes as is.
    if isinstance(mesh.visual, trimesh.visual.ColorVisuals) and mesh.visual.kind == "vertex":
        mesh = mesh.copy()
        visual = colour_visual(mesh)
        visual.vertex_colors = srgb_to_linear(visual.vertex_colors)
    return trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh), include_normals=True)


def _encode_obj_zip(mesh: trimesh.Trimesh, path: Path) -> bytes:
    stem = obj_stem(path)
    image = texture_image(mesh)
    if image is None:
        files = {f"{stem}.obj": _vertex_coloured_obj(mesh)}
    else:
        files = {
            f"{stem}.obj": _textured_obj(mesh, stem),
            f"{stem}.mtl": _mtl(stem, texture_visual(mesh).material),
            f"{stem}.png": _png(image),
        }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            # PNG is compressed already; deflating it again only costs time.
            method = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


def _encode_stl(mesh: trimesh.Trimesh, path: Path) -> bytes:
    return trimesh.exchange.stl.export_stl(mesh)  # binary STL: triangles only, colours have no place


def _encode_usdz(mesh: trimesh.Trimesh, path: Path) -> bytes:
    image = texture_image(mesh)
    if image is None:
        return encode_usdz(mesh, None, vertex_colours(mesh))
    return encode_usdz(mesh, _png(image))


def obj_stem(path: Path) -> str:
    """The name the files inside an OBJ zip share: "chair" for chair.obj.zip (or chair.zip, chair.obj)."""
    name = Path(path).name
    for suffix in _OBJ_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _vertex_coloured_obj(mesh: trimesh.Trimesh) -> bytes:
    # "v x y z r g b" keeps the colours in the one file; no material or texture is referenced.
    text = trimesh.exchange.obj.export_obj(
        mesh, include_normals=True, include_color=True, include_texture=False, header=HEADER
    )
    return text.encode("utf-8")


def _textured_obj(mesh: trimesh.Trimesh, stem: str) -> bytes:
    """OBJ text whose faces use material ``stem`` from ``<stem>.mtl``.

    Written here rather than by trimesh's exporter, which names the material library, the material
    and the image after the material itself and would leave the names in the zip to chance.
    """

    def block(keyword: str, values: np.ndarray) -> str:
        return f"{keyword} " + trimesh.util.array_to_string(values, col_delim=" ", row_delim=f"\n{keyword} ")

    # Vertices, UVs and normals share one index per corner, as the mesh stores them.
    corners = trimesh.util.array_to_string(
        mesh.faces + 1, col_delim=" ", row_delim="\nf ", value_format="{}/{}/{}"
    )
    lines = [
        f"# {HEADER}",
        f"mtllib {stem}.mtl",
        block("v", mesh.vertices),
        block("vt", texture_visual(mesh).uv),
        block("vn", mesh.vertex_normals),
        f"usemtl {stem}",
        "f " + corners,
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _mtl(stem: str, material: trimesh.visual.material.Material) -> bytes:
    # Kd is white so the texture shows unchanged; Pr/Pm are the PBR extension Blender and others read.
    roughness = getattr(material, "roughnessFactor", None)
    metallic = getattr(material, "metallicFactor", None)
    lines = [
        f"# {HEADER}",
        f"newmtl {stem}",
        "Ka 1.000000 1.000000 1.000000",
        "Kd 1.000000 1.000000 1.000000",
        "Ks 0.000000 0.000000 0.000000",
        "d 1.000000",
        "illum 1",
        *([f"Pr {roughness:.6f}"] if roughness is not None else []),
        *([f"Pm {metallic:.6f}"] if metallic is not None else []),
        f"map_Kd {stem}.png",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _png(image: Image.Image) -> bytes:
    # PNG holds RGB and RGBA as they are; palette, CMYK or 16-bit images become RGB.
    return encode_png(image if image.mode in ("RGB", "RGBA") else image.convert("RGB"))


_ENCODERS: dict[str, Callable[[trimesh.Trimesh, Path], bytes]] = {
    "glb": _encode_glb,
    "obj": _encode_obj_zip,
    "stl": _encode_stl,
    "usdz": _encode_usdz,
}


def _write_atomically(path: Path, payload: bytes) -> None:
    try:
        atomic_write_bytes(path, payload)
    except OSError as exc:
        raise BackendError(f'the asset "{path.name}" could not be written: {exc.strerror or exc}') from exc
