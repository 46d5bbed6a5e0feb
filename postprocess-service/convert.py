"""A finished job's master GLB, written again in another format (``POST /postprocess/convert``).

Every completed job keeps its textured, cleaned, placed mesh as a GLB: the asset itself for a GLB job,
else ``outputs/<id>.master.glb`` beside the asset (``keep_master`` and the finisher write it). A
conversion reads that file back and writes it through the same exporter as the job's own asset
(``export``): OBJ zip, STL, USDZ, GLB; FBX goes to Blender, which reads the master GLB as it is, exactly
as it reads the GLB the finisher builds for an FBX job. No cleaning, decimation or texture bake runs
again, so a conversion costs the encoding alone and gives the same mesh as a job of that format.

The master of an STL job is its untextured mesh with vertex colours (an STL job bakes no texture), so
that job's conversions carry vertex colours instead of a texture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from meshforge.cancellation import check_cancelled, commit_point
from meshforge.errors import BackendError, NotFound, UnsupportedFormat
from meshforge.geometry.colour import linear_to_srgb
from meshforge.geometry.visuals import colour_visual
from postprocess_service.blender import blender_available, export_fbx
from postprocess_service.export import export_mesh

MASTER_FORMAT = "glb"


@dataclass(frozen=True)
class ConvertJob:
    source_path: Path  # the job's master GLB
    output_path: Path
    output_format: str  # a meshforge.schemas.OutputFormat value


def require_writable(output_format: str, blender_python: Path) -> None:
    """UnsupportedFormat, before any work, for FBX where Blender is not installed."""
    if output_format == "fbx" and not blender_available(blender_python):
        raise UnsupportedFormat(
            "FBX needs headless Blender, which is not installed on this post-processing service: run "
            "scripts/bootstrap (it creates .venv-blender) or set MESHFORGE_BLENDER_PYTHON "
            f"(now {blender_python})"
        )


def convert_master(job: ConvertJob, blender_python: Path, blender_timeout: float) -> dict[str, Any]:
    """Write ``job.source_path`` as ``job.output_format`` at ``job.output_path``; returns the mesh's
    ``vertices`` and ``faces``, the file's ``bytes`` and the ``writer`` that encoded it."""
    mesh = load_master(job.source_path)  # FBX too: it proves the master whole and gives the counts
    check_cancelled()
    if job.output_format == "fbx":
        export_fbx(job.source_path, job.output_path, blender_python=blender_python, timeout=blender_timeout)
        writer = "blender"
    else:
        export_mesh(mesh, job.output_path, job.output_format)
        writer = "trimesh"
    return {
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "bytes": job.output_path.stat().st_size,
        "writer": writer,
    }


def load_master(path: Path) -> trimesh.Trimesh:
    """The one mesh of a master GLB, with its texture, or with its vertex colours back in sRGB."""
    if not path.is_file():
        raise NotFound(f'the master GLB "{path.name}" is no longer on disk')
    try:
        loaded = trimesh.load(path, file_type=MASTER_FORMAT, process=False)
    except Exception as exc:  # trimesh's parsers raise anything on bad bytes; the master is ours
        raise BackendError(f'the master GLB "{path.name}" could not be read: {exc}') from exc
    parts = loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]
    meshes = [part for part in parts if isinstance(part, trimesh.Trimesh) and len(part.faces) > 0]
    if len(meshes) != 1:
        raise BackendError(
            f'the master GLB "{path.name}" holds {len(meshes)} meshes, not the one it was written with'
        )
    mesh = meshes[0]
    visual = mesh.visual
    if isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex":
        # COLOR_0 is linear light (the GLB encoder converted it); every encoder expects sRGB.
        colours = colour_visual(mesh)
        colours.vertex_colors = linear_to_srgb(np.asarray(colours.vertex_colors))
    return mesh


def keep_master(glb_path: Path, master_path: Path) -> Path:
    """Move a finished GLB (the one Blender read for an FBX job) into place as the job's master: no
    second encoding. Both lie in outputs/, so the rename is atomic; a cancelled job's never appears."""
    os.chmod(glb_path, 0o644)
    try:
        with commit_point():
            os.replace(glb_path, master_path)
    except OSError as exc:
        raise BackendError(
            f'the master "{master_path.name}" could not be written: {exc.strerror or exc}'
        ) from exc
    return master_path
