"""Post-processing with trimesh, xatlas and headless Blender.

trimesh cleans, decimates and places the mesh; xatlas unwraps it so its colours are baked into a
texture; trimesh writes GLB, OBJ (zipped with its material and texture) and STL, USD writes USDZ;
Blender, in its own process, turns the textured GLB into FBX. A preview PNG is drawn from the placed mesh.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from meshforge.cancellation import check_cancelled, report_progress
from meshforge.errors import UnsupportedFormat
from meshforge.settings import PostprocessSettings
from meshforge.storage import atomic_write_bytes
from postprocess_service.backends.base import FinishJob
from postprocess_service.blender import blender_available, export_fbx
from postprocess_service.cleaning import clean_mesh, decimate, load_mesh
from postprocess_service.convert import MASTER_FORMAT, keep_master
from postprocess_service.export import SUPPORTED_FORMATS, check_format, export_mesh, format_name
from postprocess_service.placement import place
from postprocess_service.preview import render_preview
from postprocess_service.texturing import bake_vertex_colours

UNTEXTURED_FORMATS = frozenset({"stl"})  # the format has no place for a texture


class Laps:
    """Seconds spent in each named step of a plan of ``steps``. The end of each step is a safe point: a
    cancelled job stops there (meshforge.cancellation), before the next step starts; and the job's
    progress is the steps done of the plan."""

    def __init__(self, steps: int) -> None:
        self.seconds: dict[str, float] = {}
        self.steps = steps
        self._clock = time.monotonic()
        report_progress(0, steps, "steps")

    def __call__(self, step: str) -> None:
        now = time.monotonic()
        self.seconds[step] = round(now - self._clock, 3)
        self._clock = now
        check_cancelled()
        report_progress(len(self.seconds), self.steps, "steps")


class TrimeshFinisher:
    name = "trimesh"

    def __init__(self, settings: PostprocessSettings) -> None:
        self._blender_python = Path(settings.blender_python)
        self._blender_timeout = settings.blender_timeout_seconds

    @property
    def formats(self) -> frozenset[str]:
        fbx = {"fbx"} if blender_available(self._blender_python) else set()
        return SUPPORTED_FORMATS | fbx

    def finish(self, job: FinishJob) -> dict[str, Any]:
        output_format = self._check_format(job.output_format)
        # load, clean, [decimate], [preview], texture, export
        laps = Laps(4 + (job.target_faces is not None) + (job.preview_path is not None))
        mesh = load_mesh(job.mesh_path)
        faces_in = len(mesh.faces)
        laps("load")
        mesh = clean_mesh(mesh)
        laps("clean")
        if job.target_faces is not None:
            mesh = decimate(mesh, job.target_faces)
            laps("decimate")
        mesh = place(mesh, job.origin, job.height_m)
        if job.preview_path is not None:
            atomic_write_bytes(job.preview_path, render_preview(mesh))
            laps("preview")
        asset = mesh if output_format in UNTEXTURED_FORMATS else bake_vertex_colours(mesh, job.texture_size)
        laps("texture")
        self._export(asset, job.output_path, output_format, job.master_path)
        laps("export")
        return {
            "vertices": len(mesh.vertices),
            "faces": len(mesh.faces),
            "faces_in": faces_in,
            "watertight": bool(mesh.is_watertight),
            "extents": [round(float(x), 4) for x in mesh.extents],
            "texture_size": None if output_format in UNTEXTURED_FORMATS else job.texture_size,
            "step_seconds": laps.seconds,
        }

    def _check_format(self, output_format: str) -> str:
        if format_name(output_format) == "fbx":
            if not blender_available(self._blender_python):
                raise UnsupportedFormat(
                    "FBX export needs headless Blender, which is not installed here: run scripts/bootstrap "
                    f"(it creates .venv-blender) or set MESHFORGE_BLENDER_PYTHON (now {self._blender_python})"
                )
            return "fbx"
        return check_format(output_format)

    def _export(self, asset: Any, output_path: Path, output_format: str, master_path: Path | None) -> None:
        """The asset, then the job's master GLB (postprocess_service.convert) unless the asset is GLB."""
        if output_format != "fbx":
            export_mesh(asset, output_path, output_format)
            if master_path is not None and output_format != MASTER_FORMAT:
                export_mesh(asset, master_path, MASTER_FORMAT)  # the mesh in memory: no second pass
            return
        with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".fbx-") as folder:
            source = export_mesh(asset, Path(folder) / "source.glb", MASTER_FORMAT)
            export_fbx(
                source, output_path, blender_python=self._blender_python, timeout=self._blender_timeout
            )
            if master_path is not None:
                keep_master(source, master_path)  # the GLB Blender read is the master
