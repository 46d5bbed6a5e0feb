"""Post-processing with trimesh: clean, consistent outward normals, decimate, place, export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from postprocess_service.cleaning import clean_mesh, decimate, load_mesh, place_on_ground
from postprocess_service.export import SUPPORTED_FORMATS, check_format, export_mesh


class TrimeshFinisher:
    name = "trimesh"
    formats = SUPPORTED_FORMATS

    def finish(
        self, mesh_path: Path, output_format: str, target_faces: int | None, output_path: Path
    ) -> dict[str, Any]:
        check_format(output_format)
        timings: dict[str, float] = {}
        clock = time.monotonic()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.monotonic()
            timings[step] = round(now - clock, 3)
            clock = now

        mesh = load_mesh(mesh_path)
        faces_in = len(mesh.faces)
        lap("load")
        mesh = clean_mesh(mesh)
        lap("clean")
        if target_faces is not None:
            mesh = decimate(mesh, target_faces)
        lap("decimate")
        mesh = place_on_ground(mesh)
        export_mesh(mesh, output_path, output_format)
        lap("export")
        return {
            "vertices": len(mesh.vertices),
            "faces": len(mesh.faces),
            "faces_in": faces_in,
            "watertight": bool(mesh.is_watertight),
            "step_seconds": timings,
        }
