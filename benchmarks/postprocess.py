"""Post-processing, step by step, at 50k, 200k and 1M input faces.

    .venv/bin/python -m benchmarks.postprocess [--sizes 50k 200k 1M] [--no-fbx]
    .venv/bin/python -m benchmarks.postprocess --sizes 50k      # the quick check (~15 s)

Inputs are closed, vertex-coloured marching-cubes surfaces of a bumpy blob (what reconstruction
hands this stage). Each step is timed once per size, in process, on one mesh; prints a Markdown table.
The FBX column needs headless Blender (.venv-blender, made by `make install`); without it the column is
left out and the reason printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from skimage.measure import marching_cubes

from meshforge.geometry.visuals import colour_visual
from meshforge.settings import PostprocessSettings
from postprocess_service.blender import blender_available, export_fbx
from postprocess_service.cleaning import clean_mesh, decimate, load_mesh
from postprocess_service.export import export_mesh
from postprocess_service.placement import place
from postprocess_service.preview import render_preview
from postprocess_service.texturing import bake_vertex_colours

# Grid resolutions whose blob surfaces have about 50k, 200k and 1M triangles.
SIZES = {"50k": 104, "200k": 208, "1M": 466}
TARGET_FACES = 20_000
TEXTURE_SIZE = 1024


def blob(resolution: int) -> trimesh.Trimesh:
    axis = np.linspace(-1, 1, resolution)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = np.sqrt(x**2 + y**2 + z**2)
    bumps = 0.08 * np.sin(5 * x) * np.sin(4 * y) * np.sin(3 * z)
    vertices, faces, _, _ = marching_cubes(0.7 + bumps - radius, level=0.0)
    mesh = trimesh.Trimesh(vertices / resolution, faces[:, ::-1], process=False)
    colours = np.clip(128 + 120 * np.sin(6 * mesh.vertices), 0, 255).astype(np.uint8)
    colour_visual(mesh).vertex_colors = np.column_stack([colours, np.full(len(colours), 255, np.uint8)])
    return mesh


def timed(step: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def run_size(resolution: int, folder: Path, blender: Path | None) -> tuple[int, dict[str, float]]:
    raw = folder / "raw.glb"
    blob(resolution).export(raw)
    seconds: dict[str, float] = {}
    mesh, seconds["load"] = timed(lambda: load_mesh(raw))
    faces = len(mesh.faces)
    mesh, seconds["clean"] = timed(lambda: clean_mesh(mesh))
    mesh, seconds[f"decimate → {TARGET_FACES // 1000}k"] = timed(lambda: decimate(mesh, TARGET_FACES))
    mesh, seconds["place"] = timed(lambda: place(mesh))
    _, seconds["preview"] = timed(lambda: render_preview(mesh))
    textured, seconds["UV + bake 1024²"] = timed(lambda: bake_vertex_colours(mesh, TEXTURE_SIZE))
    _, seconds["GLB"] = timed(lambda: export_mesh(textured, folder / "a.glb", "glb"))
    _, seconds["OBJ zip"] = timed(lambda: export_mesh(textured, folder / "a.obj.zip", "obj"))
    _, seconds["USDZ"] = timed(lambda: export_mesh(textured, folder / "a.usdz", "usdz"))
    if blender is not None:
        _, seconds["FBX (Blender)"] = timed(
            lambda: export_fbx(folder / "a.glb", folder / "a.fbx", blender_python=blender, timeout=600)
        )
    return faces, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), help="input sizes")
    parser.add_argument("--no-fbx", action="store_true", help="leave out the FBX export (Blender)")
    args = parser.parse_args()
    python = Path(PostprocessSettings().blender_python)
    blender: Path | None = None
    if args.no_fbx:
        fbx_note = "FBX left out (--no-fbx)"
    elif not blender_available(python):
        fbx_note = f"FBX left out: no headless Blender at {python} (`make install` makes it)"
    else:
        blender, fbx_note = python, ""
    rows: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as folder:
        for label in args.sizes:
            faces, seconds = run_size(SIZES[label], Path(folder), blender)
            rows.append((label, faces, seconds))
    steps = list(rows[0][2])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{fbx_note}\n" if fbx_note else "")
    print("| input | faces | " + " | ".join(steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for label, faces, seconds in rows:
        print(f"| {label} | {faces:,} | " + " | ".join(f"{seconds[s]:.2f}" for s in steps) + " |")


if __name__ == "__main__":
    main()
