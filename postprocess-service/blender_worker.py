"""Turn a GLB into an FBX with headless Blender, or describe an FBX; run by the Python of .venv-blender.

    python blender_worker.py IN.glb OUT.fbx   convert; prints a one-line summary
    python blender_worker.py --check IN.fbx   re-import an FBX and describe it (for tests and checks)

Only the standard library and ``bpy`` may be imported here: this script runs in Blender's own virtualenv
(bpy pins numpy<2, the project uses numpy 2), one process per file, started by
``postprocess_service.blender``. The result is the stdout line that starts with ``RESULT_PREFIX``, because
Blender and its add-ons print progress on stdout too. Failures go to stderr with exit status 1.

Axes: glTF is Y-up with the front facing +Z; Blender is Z-up and its glTF importer and FBX exporter
both convert, so the FBX written with the exporter's default mapping (Y up, -Z forward) holds the glTF
coordinates unchanged. ``bake_space_transform`` puts that conversion into the vertices instead of a
-90° rotation on the object, which game engines would show as the asset's rotation.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy

RESULT_PREFIX = "MESHFORGE_RESULT "
IMAGE_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TARGA": "tga", "BMP": "bmp"}
AXIS_NAMES = "XYZ"
POSITION_DECIMALS = 5  # 10 µm: positions equal to this count as one vertex
# Where an FBX names a file: elements of Texture and Video nodes, and Properties70 entries (the part of a
# compound name after its last "|": "Original|FileName").
PATH_ELEMENTS = {b"FileName", b"Filename", b"RelativeFilename"}
PATH_PROPERTIES = {"Path", "FileName", "Filename", "RelativeFilename", "ApplicationNativeFile"}
DOCUMENT_PROPERTIES = {"DocumentUrl", "SrcDocumentUrl", "Original|FileName"}
PROPERTY_VALUE = 4  # a P element is (name, type, label, flags, value...)


class WorkerError(Exception):
    """A failure with a message meant for the person who asked for the file."""


def convert(glb_path: Path, fbx_path: Path) -> dict[str, Any]:
    reset_scene()
    import_glb(glb_path)
    meshes = mesh_objects()
    if not meshes:
        raise WorkerError(f'"{glb_path.name}" holds no mesh to export')
    name_images_for_embedding()
    export_fbx(fbx_path)
    written = read_fbx_file(fbx_path)
    if any(not is_bare_file_name(path) for path in written["paths"]):
        # A safety net for a changed exporter; the message names no path, as it may reach the client.
        raise WorkerError("Blender wrote folder names into the FBX; it was not published")
    return {**mesh_counts(meshes), "images_embedded": written["embedded_images"]}


def check(fbx_path: Path) -> dict[str, Any]:
    reset_scene()
    run_operator(bpy.ops.import_scene.fbx, "read", fbx_path, filepath=str(fbx_path))
    meshes = mesh_objects()
    positions = world_positions_y_up(meshes)
    images = [image for image in bpy.data.images if image.packed_file or image.has_data]
    return {
        **mesh_counts(meshes),
        "images_with_data": len(images),
        "image_sizes": sorted([image.size[0], image.size[1]] for image in images),
        "bounds": bounds(positions),
        "uv_layers": max((len(obj.data.uv_layers) for obj in meshes), default=0),
        "textured_materials": textured_materials(),
        "mean_colour_srgb": mean_colour_srgb(meshes),
        "file": read_fbx_file(fbx_path),
    }


def reset_scene() -> None:
    # An empty factory scene: no default cube, camera or light to end up in the asset, and no user
    # preferences or startup file of whoever runs the service.
    bpy.ops.wm.read_factory_settings(use_empty=True)


def import_glb(glb_path: Path) -> None:
    # merge_vertices stays off: the FBX keeps the GLB's vertices as they are, split where UVs differ,
    # which is how game engines store them anyway (the importer would only merge vertices whose
    # normals agree too, which a texture seam's rarely do).
    run_operator(bpy.ops.import_scene.gltf, "read", glb_path, filepath=str(glb_path), merge_vertices=False)


def export_fbx(fbx_path: Path) -> None:
    with bare_file_names(fbx_path.name):
        write_fbx(fbx_path)


def write_fbx(fbx_path: Path) -> None:
    run_operator(
        bpy.ops.export_scene.fbx,
        "write",
        fbx_path,
        filepath=str(fbx_path),
        check_existing=False,
        object_types={"MESH", "EMPTY"},
        axis_up="Y",
        axis_forward="-Z",
        bake_space_transform=True,
        # 1 Blender unit is 1 m; FBX counts in cm, so the file says "100 cm per unit" instead of
        # giving every object a scale of 100.
        apply_scale_options="FBX_SCALE_ALL",
        # Smoothing groups as well as normals: some importers (Unreal) warn without them.
        mesh_smooth_type="FACE",
        colors_type="SRGB",
        # The only mode that embeds (any other turns embed_textures off); bare_file_names then removes
        # the folder it names.
        path_mode="COPY",
        embed_textures=True,
        bake_anim=False,
        add_leaf_bones=False,
        use_custom_props=False,
    )


def run_operator(operator: Any, verb: str, path: Path, **options: Any) -> None:
    if verb == "read" and not path.is_file():  # the importers would only say "Please select a file"
        raise WorkerError(f'there is no file "{path}" to read')
    try:
        result = operator(**options)
    except RuntimeError as exc:  # bpy turns an operator's error report into RuntimeError
        raise WorkerError(f'Blender could not {verb} "{path.name}": {operator_reason(exc)}') from exc
    if "FINISHED" not in result:
        raise WorkerError(f'Blender could not {verb} "{path.name}" ({", ".join(sorted(result))})')


def operator_reason(exc: RuntimeError) -> str:
    """The operator's report in one line; for an add-on's exception, its last line, not the traceback.

    Blender has already printed the whole report on stderr.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Location:")] or ["no reason given"]
    reason = lines[-1] if any("Traceback" in line for line in lines) else lines[0]
    return reason.removeprefix("Error:").strip()


def name_images_for_embedding() -> None:
    """Give every image a unique file name with its format's extension.

    Images from a GLB are packed with an empty path. The FBX exporter embeds each file path only once,
    so two such images would share one embedded file, and engines choose the decoder and the name of
    the extracted texture by that file name.
    """
    taken: set[str] = set()
    for index, image in enumerate(bpy.data.images):
        if image.source != "FILE" or image.packed_file is None:
            continue
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(image.name).stem).strip("_") or f"texture_{index}"
        extension = IMAGE_EXTENSIONS.get(image.file_format, image.file_format.lower() or "png")
        name = f"{stem}.{extension}"
        if name in taken:
            name = f"{stem}_{index}.{extension}"
        taken.add(name)
        image.filepath_raw = f"//{name}"  # only the string: setting filepath would reload the image


@contextmanager
def bare_file_names(document_name: str) -> Iterator[None]:
    """While exporting, make every path the FBX holds a bare file name; the document's is ``document_name``.

    The exporter records each texture as the absolute path it would copy it to, beside the FBX: the
    service's temporary folder under outputs/. No path_mode avoids it (STRIP turns embedding off, and
    the exporter makes the path absolute whatever the mode), and exporting from another folder would
    only name that folder instead. So the paths are cut to their file names in the element tree,
    between its building and its encoding by ``encode_bin.write``, which the exporter looks up on the
    module at the call. Engines take the embedded pixels through the Texture→Video connection; a bare
    name is where a tool that extracts them puts the file, beside the FBX. The exporter's document URL
    is a fixed "/foobar.fbx"; the file's own name replaces it.
    """
    from io_scene_fbx import encode_bin  # the module the exporter writes through, shipped with bpy

    original_write = encode_bin.write

    def write_with_bare_names(filepath: str, root: Any, version: int) -> None:
        _strip_folders(root, document_name)
        original_write(filepath, root, version)

    encode_bin.write = write_with_bare_names
    try:
        yield
    finally:
        encode_bin.write = original_write


def _strip_folders(root: Any, document_name: str) -> None:
    """Cut every path in the exporter's tree, whose strings are a uint32 length and the bytes."""
    for element, index, is_document in _path_slots(root, _unpacked):
        path = document_name if is_document else bare_file_name(_unpacked(element.props[index]))
        data = path.encode("utf-8")
        element.props[index] = len(data).to_bytes(4, "little") + data


def _path_slots(element: Any, text: Callable[[bytes], str]) -> Iterator[tuple[Any, int, bool]]:
    """(element, index of the string, whether it is the document's own name) for each file named.

    Works on the exporter's tree and the parser's alike; ``text`` reads one of their strings.
    """
    kinds = element.props_type
    if element.id in PATH_ELEMENTS and kinds[:1] == b"S":
        yield element, 0, False
    elif element.id == b"P" and kinds[: PROPERTY_VALUE + 1] == b"S" * (PROPERTY_VALUE + 1):
        name = text(element.props[0])
        if name in DOCUMENT_PROPERTIES or name.rsplit("|", 1)[-1] in PATH_PROPERTIES:
            yield element, PROPERTY_VALUE, name in DOCUMENT_PROPERTIES
    for child in element.elems:
        yield from _path_slots(child, text)


def _unpacked(packed: bytes) -> str:
    return packed[4:].decode("utf-8", errors="replace")


def bare_file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def is_bare_file_name(path: str) -> bool:
    return bare_file_name(path) == path and path not in {".", ".."} and ":" not in path


def textured_materials() -> int:
    """Materials whose shader takes its input from an image texture that has pixels."""
    return sum(
        1
        for material in bpy.data.materials
        if material.node_tree
        and any(
            node.type == "TEX_IMAGE"
            and node.image is not None
            and (node.image.packed_file or node.image.has_data)
            and any(output.is_linked for output in node.outputs)
            for node in material.node_tree.nodes
        )
    )


def mesh_objects() -> list[Any]:
    return [obj for obj in bpy.data.objects if obj.type == "MESH"]


def mesh_counts(meshes: list[Any]) -> dict[str, int]:
    for obj in meshes:
        obj.data.calc_loop_triangles()
    materials = {slot.material.name for obj in meshes for slot in obj.material_slots if slot.material}
    return {
        "objects": len(meshes),
        "vertices": sum(len(obj.data.vertices) for obj in meshes),
        "faces": sum(len(obj.data.loop_triangles) for obj in meshes),
        "polygons": sum(len(obj.data.polygons) for obj in meshes),
        "materials": len(materials),
    }


def world_positions_y_up(meshes: list[Any]) -> list[tuple[float, float, float]]:
    """Vertex positions in the scene, in glTF/FBX axes: Blender's (x, y, z) is (x, z, -y) there."""
    positions = []
    for obj in meshes:
        matrix = obj.matrix_world
        for vertex in obj.data.vertices:
            x, y, z = matrix @ vertex.co
            positions.append((x, z, -y))
    return positions


def bounds(positions: list[tuple[float, float, float]]) -> list[list[float]] | None:
    if not positions:
        return None
    return [
        [min(p[i] for p in positions) for i in range(3)],
        [max(p[i] for p in positions) for i in range(3)],
    ]


def mean_colour_srgb(meshes: list[Any]) -> list[float] | None:
    """The mean of the first colour attribute, as a viewer shows it (sRGB, 0–1); None without colours."""
    totals, count = [0.0, 0.0, 0.0], 0
    for obj in meshes:
        if not obj.data.color_attributes:
            continue
        for item in obj.data.color_attributes[0].data:
            for channel in range(3):
                totals[channel] += item.color_srgb[channel]
            count += 1
    return [total / count for total in totals] if count else None


def read_fbx_file(fbx_path: Path) -> dict[str, Any]:
    """What an engine reads from the file itself, independent of Blender's re-import.

    Axes and unit from GlobalSettings, embedded images (Video nodes with content), objects carrying a
    rotation, the bounds and distinct positions of the stored vertices, and every string that names a
    file or holds a slash (object names aside).
    """
    from io_scene_fbx import parse_fbx  # Blender's own FBX parser, shipped with bpy

    root, _version = parse_fbx.parse(str(fbx_path))
    settings = {p.props[0].decode(): p.props[-1] for p in _find(root, b"GlobalSettings", b"Properties70")}
    objects = next((e for e in root.elems if e.id == b"Objects"), None)
    nodes = objects.elems if objects is not None else []
    points = _stored_positions(nodes)
    return {
        "up": _axis(settings, "UpAxis"),
        "front": _axis(settings, "FrontAxis"),
        "coord": _axis(settings, "CoordAxis"),
        "unit_scale_factor": settings.get("UnitScaleFactor"),
        "embedded_images": sum(
            1 for node in nodes if node.id == b"Video" for e in _children(node, b"Content") if e.props[0]
        ),
        "rotated_models": sum(1 for node in nodes if node.id == b"Model" and _is_rotated(node)),
        "geometry_bounds": bounds(points),
        # From the stored numbers, not the re-import: Blender's Y-up to Z-up rotation on re-import adds
        # float noise that could move a position across a rounding boundary.
        "unique_positions": len({tuple(round(c, POSITION_DECIMALS) for c in p) for p in points}),
        "paths": sorted(_path_strings(root)),
    }


def _path_strings(root: Any) -> set[str]:
    """The non-empty strings that name a file, and any other string with a slash in it.

    Object names ("name\\x00\\x01Class") and dates ("01/01/1970 …") are left out: no folder there.
    """
    named = {_decoded(element.props[index]) for element, index, _ in _path_slots(root, _decoded)}
    return (named | set(_strings_with_slashes(root))) - {""}


def _strings_with_slashes(element: Any) -> Iterator[str]:
    strings = [
        _decoded(value)
        for value, kind in zip(element.props, element.props_type, strict=True)
        if kind == b"S"[0]
    ]
    if not (element.id == b"P" and strings[1:2] == ["DateTime"]):
        yield from (text for text in strings if ("/" in text or "\\" in text) and "\x00\x01" not in text)
    for child in element.elems:
        yield from _strings_with_slashes(child)


def _decoded(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _stored_positions(nodes: list[Any]) -> list[tuple[float, float, float]]:
    """Every Geometry's vertices as written, without the objects' transforms."""
    points: list[tuple[float, float, float]] = []
    for node in nodes:
        if node.id != b"Geometry":
            continue
        for element in _children(node, b"Vertices"):
            flat = element.props[0]
            points.extend((flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3))
    return points


def _children(element: Any, name: bytes) -> list[Any]:
    return [child for child in element.elems if child.id == name]


def _find(root: Any, *names: bytes) -> list[Any]:
    """The children of the element reached by following ``names`` from the root ([] when absent)."""
    elements = [root]
    for name in names:
        elements = [child for element in elements for child in _children(element, name)]
    return [child for element in elements for child in element.elems]


def _axis(settings: dict[str, Any], name: str) -> str | None:
    if name not in settings:
        return None
    return ("+" if settings.get(f"{name}Sign", 1) >= 0 else "-") + AXIS_NAMES[settings[name]]


def _is_rotated(model: Any) -> bool:
    for properties in _children(model, b"Properties70"):
        for prop in properties.elems:
            if prop.props[0] == b"Lcl Rotation" and any(abs(v) > 1e-6 for v in prop.props[4:7]):
                return True
    return False


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="GLB to FBX with headless Blender, or describe an FBX.")
    parser.add_argument("--check", action="store_true", help="re-import one FBX and describe it")
    parser.add_argument("paths", nargs="+", type=Path, help="IN.glb OUT.fbx, or with --check: IN.fbx")
    args = parser.parse_args(argv)
    if len(args.paths) != (1 if args.check else 2):
        parser.error("give IN.glb OUT.fbx, or --check IN.fbx")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        summary = check(args.paths[0]) if args.check else convert(args.paths[0], args.paths[1])
    except WorkerError as exc:
        print(f"blender_worker: {exc}", file=sys.stderr, flush=True)
        return 1
    print(RESULT_PREFIX + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
