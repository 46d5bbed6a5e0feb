"""Write the finished mesh as the asset file a person downloads.

Only formats this build can write faithfully are offered: a request for anything else fails before a
byte is written, so no file with the wrong content ever appears under an asset's name. Files are
written to a temporary name in the same folder and renamed, so readers never see half an asset.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trimesh

from meshforge.errors import BackendError, InvalidInput, UnsupportedFormat
from meshforge.geometry.colour import srgb_to_linear
from meshforge.storage import atomic_write_bytes
from postprocess_service.cleaning import vertex_colours

SUPPORTED_FORMATS: frozenset[str] = frozenset({"glb", "obj"})

FBX_UNAVAILABLE = (
    "FBX export is not available yet in this build: the post-processing stage exports glb and obj "
    '(FBX through headless Blender is planned). Ask for "glb" or "obj".'
)


def export_mesh(mesh: trimesh.Trimesh, path: Path, output_format: str) -> Path:
    """Write ``mesh`` to ``path`` as glb or obj with its vertex colours; returns the path written."""
    output_format = check_format(output_format)
    if len(mesh.faces) == 0:
        raise InvalidInput("there is nothing to export: the mesh has no triangles")
    path = Path(path)
    try:
        payload = _ENCODERS[output_format](_asset_mesh(mesh))
    except Exception as exc:  # an encoder failing on valid geometry is our fault, not the requester's
        raise BackendError(f"the mesh could not be encoded as {output_format.upper()}: {exc}") from exc
    _write_atomically(path, payload)
    return path


def check_format(output_format: str) -> str:
    """The normalised format name ("GLB" and ".glb" give "glb"); UnsupportedFormat for anything else.

    Cheap, so a caller can reject a request before spending time on the mesh.
    """
    normalised = output_format.strip().lower().lstrip(".")
    if normalised in SUPPORTED_FORMATS:
        return normalised
    if normalised == "fbx":
        raise UnsupportedFormat(FBX_UNAVAILABLE)
    supported = " or ".join(f'"{name}"' for name in sorted(SUPPORTED_FORMATS))
    raise UnsupportedFormat(
        f'"{output_format}" is not an export format of this build: the post-processing stage exports '
        f"{supported}."
    )


def _asset_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Geometry and vertex colours only.

    The glTF exporter copies ``mesh.metadata`` into the file's extras, which could carry loader
    details (server file paths, a PLY's raw arrays) into the user's asset or fail to serialise.
    """
    return trimesh.Trimesh(
        vertices=mesh.vertices,
        faces=mesh.faces,
        vertex_colors=vertex_colours(mesh),
        process=False,
    )


def _encode_glb(mesh: trimesh.Trimesh) -> bytes:
    # Normals are written because glTF viewers must shade a primitive without them flat, which makes a
    # smooth marching-cubes surface look faceted. COLOR_0 is linear light by the glTF specification,
    # while our colours are sRGB (they come from images): written unconverted they look washed out.
    if mesh.visual.kind == "vertex":
        mesh = mesh.copy()
        mesh.visual.vertex_colors = srgb_to_linear(mesh.visual.vertex_colors)
    return trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh), include_normals=True)


def _encode_obj(mesh: trimesh.Trimesh) -> bytes:
    # "v x y z r g b" keeps the colours in the one file; no material or texture is referenced, so no
    # .mtl is needed next to it.
    text = trimesh.exchange.obj.export_obj(
        mesh,
        include_normals=True,
        include_color=True,
        include_texture=False,
        header="meshforge",
    )
    return text.encode("utf-8")


_ENCODERS: dict[str, Callable[[trimesh.Trimesh], bytes]] = {"glb": _encode_glb, "obj": _encode_obj}


def _write_atomically(path: Path, payload: bytes) -> None:
    try:
        atomic_write_bytes(path, payload)
    except OSError as exc:
        raise BackendError(f'the asset "{path.name}" could not be written: {exc.strerror or exc}') from exc
