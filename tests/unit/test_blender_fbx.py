"""FBX through headless Blender (postprocess_service.blender): geometry, texture, axes, clear failures.

Blender runs from its own virtualenv (.venv-blender, made by scripts/bootstrap); the tests that need it
skip without it. Failure handling that needs no Blender is tested with a stand-in interpreter.

What "the same mesh" means across the two formats: the triangles are compared exactly, and the vertices
by their distinct positions. A GLB splits a vertex wherever its UV or normal differs (a texture seam),
and an FBX may store it once with per-corner UVs, so raw vertex counts are not a stable measure.
"""

from __future__ import annotations

import asyncio
import functools
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from PIL import Image

from meshforge.cancellation import WorkRegistry, run_cancellable
from meshforge.errors import BackendError, JobCancelled, UnsupportedFormat
from meshforge.geometry.colour import linear_to_srgb, srgb_to_linear
from meshforge.settings import PostprocessSettings
from postprocess_service.blender import blender_available, export_fbx, inspect_fbx
from tests.fleet import REPO

TIMEOUT = 120.0
TEXTURE_SIZE = (32, 16)  # not square, so a texture stored transposed or resampled would show
# The output folder's name: no string in an FBX could hold it by chance, so a leak of it shows.
OUTPUT_FOLDER = "meshforge-outputs-q7z3"


def configured_blender_python() -> Path:
    configured = Path(PostprocessSettings().blender_python)
    return configured if configured.is_absolute() else REPO / configured


BLENDER_PYTHON = configured_blender_python()
needs_blender = pytest.mark.skipif(
    not blender_available(BLENDER_PYTHON),
    reason=f"headless Blender is not installed (no Python with bpy at {BLENDER_PYTHON}): "
    "run scripts/bootstrap to create .venv-blender, or set MESHFORGE_BLENDER_PYTHON",
)


def textured_mesh() -> trimesh.Trimesh:
    """An off-centre, unevenly scaled sphere with a texture; every corner its own vertex.

    The bounds show at once if an axis was swapped or flipped; the split vertices stand for the seams
    of a real texture atlas, so the GLB has more vertices than distinct positions.
    """
    sphere = trimesh.creation.icosphere(subdivisions=3)
    sphere.apply_scale((0.5, 1.0, 0.25))
    sphere.apply_translation((0.2, 1.0, -0.3))
    corners = sphere.vertices[sphere.faces].reshape(-1, 3)
    mesh = trimesh.Trimesh(corners, np.arange(len(corners)).reshape(-1, 3), process=False)
    centred = corners - sphere.bounds.mean(axis=0)
    uv = np.column_stack(
        [np.arctan2(centred[:, 0], centred[:, 2]) / (2 * np.pi) + 0.5, centred[:, 1] / 2 + 0.5]
    )
    width, height = TEXTURE_SIZE
    gradient = np.stack(np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height)), axis=-1)
    pixels = np.dstack([gradient, np.full((height, width), 128)]).astype(np.uint8)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(pixels))
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return mesh


def write_glb(mesh: trimesh.Trimesh, path: Path) -> trimesh.Trimesh:
    """Write ``mesh`` as GLB and return it as read back from the file, the reference for the FBX."""
    path.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh), include_normals=True))
    return trimesh.load(path, force="mesh", process=False)


def distinct_positions(mesh: trimesh.Trimesh) -> int:
    return len(np.unique(np.round(mesh.vertices, 5), axis=0))  # the worker's rounding: 10 µm


@dataclass(frozen=True)
class Exported:
    folder: Path
    glb: trimesh.Trimesh
    summary: dict[str, Any]
    check: dict[str, Any]


@pytest.fixture(scope="module")
def textured_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """One textured export shared by the tests that read it: each Blender run costs about a second."""
    folder = tmp_path_factory.mktemp("fbx") / OUTPUT_FOLDER
    folder.mkdir()
    glb = write_glb(textured_mesh(), folder / "source.glb")
    fbx = folder / "asset.fbx"
    summary = export_fbx(folder / "source.glb", fbx, blender_python=BLENDER_PYTHON, timeout=TIMEOUT)
    check = inspect_fbx(fbx, blender_python=BLENDER_PYTHON, timeout=TIMEOUT)
    return Exported(folder, glb, summary, check)


@needs_blender
def test_textured_glb_keeps_its_triangles_and_vertex_positions(textured_export: Exported) -> None:
    glb, check = textured_export.glb, textured_export.check
    assert len(glb.vertices) > distinct_positions(glb)  # the split seams are really there
    assert textured_export.summary["faces"] == len(glb.faces)
    assert check["faces"] == check["polygons"] == len(glb.faces)
    assert check["file"]["unique_positions"] == distinct_positions(glb)
    assert check["objects"] == 1


@needs_blender
def test_textured_glb_embeds_its_texture_in_the_fbx(textured_export: Exported) -> None:
    check = textured_export.check
    assert textured_export.summary["images_embedded"] == 1
    assert check["file"]["embedded_images"] == 1
    assert check["images_with_data"] == 1 and check["image_sizes"] == [list(TEXTURE_SIZE)]
    assert check["uv_layers"] == 1 and check["materials"] == 1
    assert check["textured_materials"] == 1  # the material's shader reads the embedded image


@needs_blender
def test_fbx_names_its_texture_and_itself_by_bare_file_names(textured_export: Exported) -> None:
    # Every string that names a file, or holds a slash: Texture FileName/RelativeFilename, Video
    # Filename/RelativeFilename/Path, the document URL and file name. Blender's exporter would write
    # the absolute path of the staging folder under outputs/ (and "/foobar.fbx" as the document).
    assert textured_export.check["file"]["paths"] == ["Image_0.png", "asset.fbx"]


@needs_blender
def test_fbx_holds_no_part_of_the_server_folders(textured_export: Exported) -> None:
    folder = textured_export.folder
    written = (folder / "asset.fbx").read_bytes()
    staging_prefix = ".asset.fbx."  # the temporary folder it was written in: ".asset.fbx.<random>"
    server_names = [str(folder), OUTPUT_FOLDER, staging_prefix, str(REPO), str(Path.cwd())]
    names = [*server_names, tempfile.gettempdir() + "/", str(BLENDER_PYTHON.parent)]
    assert [name for name in names if name.encode() in written] == []


@needs_blender
def test_fbx_keeps_the_gltf_orientation_and_metre_scale(textured_export: Exported) -> None:
    glb, check = textured_export.glb, textured_export.check
    # As stored: what an engine reads, with no rotation on the object to undo...
    assert (check["file"]["up"], check["file"]["front"], check["file"]["coord"]) == ("+Y", "+Z", "+X")
    assert check["file"]["unit_scale_factor"] == 100.0  # centimetres per unit: 1 unit = 1 m
    assert check["file"]["rotated_models"] == 0
    np.testing.assert_allclose(check["file"]["geometry_bounds"], glb.bounds, atol=1e-6)
    # ...and as Blender places it when it imports the file again.
    np.testing.assert_allclose(check["bounds"], glb.bounds, atol=1e-5)


@needs_blender
def test_fbx_appears_under_its_name_with_no_temporary_files_left(textured_export: Exported) -> None:
    assert sorted(path.name for path in textured_export.folder.iterdir()) == ["asset.fbx", "source.glb"]
    assert stat.S_IMODE((textured_export.folder / "asset.fbx").stat().st_mode) == 0o644


@needs_blender
def test_every_texture_of_a_material_is_embedded(tmp_path: Path) -> None:
    # A GLB's images reach Blender with no file name, and the exporter embeds each name only once: left
    # alone, the normal map would be written without its pixels.
    mesh = trimesh.creation.icosphere(subdivisions=2)
    uv = mesh.vertices[:, :2] / 2 + 0.5
    base_colour = Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8))
    normal_map = Image.fromarray(np.tile(np.array([128, 128, 255], dtype=np.uint8), (4, 4, 1)))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=base_colour, normalTexture=normal_map)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    write_glb(mesh, tmp_path / "source.glb")

    summary = export_fbx(
        tmp_path / "source.glb", tmp_path / "asset.fbx", blender_python=BLENDER_PYTHON, timeout=TIMEOUT
    )
    check = inspect_fbx(tmp_path / "asset.fbx", blender_python=BLENDER_PYTHON, timeout=TIMEOUT)

    assert summary["images_embedded"] == check["file"]["embedded_images"] == 2
    assert check["image_sizes"] == [[4, 4], [8, 8]]
    images = [path for path in check["file"]["paths"] if path != "asset.fbx"]
    assert len(images) == 2 and all("/" not in path and path.endswith(".png") for path in images)


@needs_blender
def test_vertex_coloured_glb_exports_to_fbx(tmp_path: Path) -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    srgb = np.tile(np.array([[200, 60, 40, 255]], dtype=np.uint8), (len(mesh.vertices), 1))
    mesh.visual.vertex_colors = srgb_to_linear(srgb)  # glTF's COLOR_0 is linear light
    glb = write_glb(mesh, tmp_path / "source.glb")

    summary = export_fbx(
        tmp_path / "source.glb", tmp_path / "asset.fbx", blender_python=BLENDER_PYTHON, timeout=TIMEOUT
    )
    check = inspect_fbx(tmp_path / "asset.fbx", blender_python=BLENDER_PYTHON, timeout=TIMEOUT)

    assert summary["faces"] == check["faces"] == len(glb.faces)
    assert check["file"]["unique_positions"] == distinct_positions(glb)
    assert summary["images_embedded"] == 0
    shown = linear_to_srgb(srgb_to_linear(srgb[:1]))[0, :3] / 255  # what a viewer of the GLB shows
    np.testing.assert_allclose(check["mean_colour_srgb"], shown, atol=1.5 / 255)


def test_missing_blender_gives_a_clear_unsupported_format_error(tmp_path: Path) -> None:
    glb = tmp_path / "source.glb"
    write_glb(textured_mesh(), glb)
    no_interpreter = tmp_path / ".venv-blender" / "bin" / "python"
    no_bpy = Path(sys.executable)  # the project's own Python: numpy 2, so never bpy
    for blender_python in (no_interpreter, no_bpy):
        assert not blender_available(blender_python)
        with pytest.raises(UnsupportedFormat, match="FBX export needs headless Blender") as refused:
            export_fbx(glb, tmp_path / "asset.fbx", blender_python=blender_python, timeout=TIMEOUT)
        assert "scripts/bootstrap" in refused.value.message
        assert "MESHFORGE_BLENDER_PYTHON" in refused.value.message
        with pytest.raises(UnsupportedFormat):
            inspect_fbx(tmp_path / "asset.fbx", blender_python=blender_python, timeout=TIMEOUT)
    assert not (tmp_path / "asset.fbx").exists()


@needs_blender
def test_corrupt_glb_gives_backend_error_with_blender_message(tmp_path: Path) -> None:
    whole = tmp_path / "whole.glb"
    write_glb(textured_mesh(), whole)
    corrupt = tmp_path / "corrupt.glb"
    corrupt.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(BackendError, match=r'convert "corrupt\.glb" to FBX.*Bad GLB'):
        export_fbx(corrupt, tmp_path / "asset.fbx", blender_python=BLENDER_PYTHON, timeout=TIMEOUT)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corrupt.glb", "whole.glb"]


def stand_in_blender(tmp_path: Path, behaviour: str) -> Path:
    """An executable that passes the bpy probe like a Python with bpy, then runs ``behaviour``."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\nif [ "$2" = "-c" ]; then exit 0; fi\n{behaviour}\n')
    script.chmod(0o755)
    return script


def test_crashing_blender_gives_backend_error_with_its_last_words(tmp_path: Path) -> None:
    crashing = stand_in_blender(tmp_path, 'echo "Fatal Python error: Segmentation fault" >&2\nkill -SEGV $$')
    with pytest.raises(BackendError, match=r"killed by SIGSEGV.*Fatal Python error: Segmentation fault"):
        export_fbx(tmp_path / "source.glb", tmp_path / "asset.fbx", blender_python=crashing, timeout=TIMEOUT)
    assert not (tmp_path / "asset.fbx").exists()


def test_blender_running_past_its_timeout_is_stopped_with_a_backend_error(tmp_path: Path) -> None:
    stuck = stand_in_blender(tmp_path, "exec sleep 60")
    with pytest.raises(BackendError, match=r"within 0\.5 s and was stopped"):
        export_fbx(tmp_path / "source.glb", tmp_path / "asset.fbx", blender_python=stuck, timeout=0.5)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["python"]


def test_cancelling_the_job_kills_blender_mid_export_and_leaves_no_file(tmp_path: Path) -> None:
    """An export has no safe point: the job's cancel kills the worker process at once."""
    stuck = stand_in_blender(tmp_path, "exec sleep 60")
    registry = WorkRegistry()
    job_id = "c" * 32

    async def export_then_cancel() -> float:
        export = asyncio.ensure_future(
            run_cancellable(
                functools.partial(export_fbx, blender_python=stuck, timeout=TIMEOUT),
                tmp_path / "source.glb",
                tmp_path / "asset.fbx",
                job_id=job_id,
                registry=registry,
            )
        )
        while not registry.running(job_id):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the stand-in is asleep inside its "export"
        cancelled_at = time.monotonic()
        assert registry.cancel(job_id) == 1
        with pytest.raises(JobCancelled):
            await export
        return time.monotonic() - cancelled_at

    assert asyncio.run(export_then_cancel()) < 10  # not the stand-in's 60 s
    assert sorted(path.name for path in tmp_path.iterdir()) == ["python"]
