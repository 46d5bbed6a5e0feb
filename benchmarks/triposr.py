"""TripoSR through the reconstruction backend: seconds per mesh and peak GPU memory.

    .venv/bin/python -m benchmarks.triposr            # GPU when torch sees one, else the tiny CPU model
    .venv/bin/python -m benchmarks.triposr --runs 5 --resolutions 256
    .venv/bin/python -m benchmarks.triposr --runs 1 --resolutions 32     # the quick check (CPU: ~5 s)
    .venv/bin/python -m benchmarks.triposr --resolutions 256 --dtypes float16 --chunks 65536   # one case

On a GPU it builds TripoSR at full size (the published config, 419 M parameters) with random weights
directly on the GPU, nothing downloaded, and sets the few weights that make the density field a ball
(tests/tiny_triposr.py), so marching cubes has a surface of realistic size to extract, as a real object
would give. It then times ``TripoSR.reconstruct`` (conditioning image, transformer, density grid,
marching cubes, vertex colours, canonical frame) at marching-cubes resolution 256 and 384, in fp16
autocast and fp32, with the default and a large density chunk. Without a GPU it times the tiny test
model, loaded from disk like production, on the CPU, at resolution 64, 128 and 256 (``--cpu`` does so even
beside a GPU). Figures go to docs/performance.md. ``measure(args)`` returns the rows for a caller
(``python -m benchmarks.gpu`` runs it with ``SUITE_ARGS``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.gpu import Measured
from meshforge.geometry.views import FRONT
from meshforge.settings import ReconstructionSettings
from reconstruction_service.backends.triposr import TripoSR
from reconstruction_service.triposr.config import load_config
from reconstruction_service.triposr.model import build_model
from tests.tiny_triposr import build_tiny_triposr, shape_density_ball

PUBLISHED_CONFIG = Path(__file__).resolve().parent.parent / "tests" / "data" / "triposr" / "config.yaml"


def test_image(size: int = 512) -> np.ndarray:
    """A red disc on transparency: one object, as the image stage hands views over."""
    rows, cols = np.mgrid[:size, :size]
    image = np.zeros((size, size, 4), dtype=np.uint8)
    disc = (rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (size / 3) ** 2
    image[disc] = (200, 40, 40, 255)
    return image


def time_backend(backend: TripoSR, runs: int) -> dict[str, float]:
    image = test_image()
    backend.reconstruct([image], [FRONT], resolution=0)  # warm-up: kernels, autotuning, allocator
    cuda = backend.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    totals, models, meshes = [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        mesh, detail = backend.reconstruct([image], [FRONT], resolution=0)
        if cuda:
            torch.cuda.synchronize()
        totals.append(time.perf_counter() - started)
        models.append(detail["model_seconds"])
        meshes.append(detail["mesh_seconds"])
    return {
        "seconds": statistics.median(totals),
        "model": statistics.median(models),
        "mesh": statistics.median(meshes),
        "faces": len(mesh.faces),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
    }


@dataclass
class Row:
    resolution: int
    dtype: str
    chunk: int
    seconds: float  # median seconds per mesh
    model_seconds: float  # of which the transformer (image to triplanes)
    mesh_seconds: float  # of which the density grid, marching cubes and colours
    faces: int
    peak_gib: float | None  # peak GPU memory allocated; None on the CPU


# What `python -m benchmarks.gpu` runs of this benchmark (its own options), by device and --quick: on a
# GPU every case of the full run, with 3 timed runs each instead of 5 to fit its time budget.
SUITE_ARGS: dict[str, list[str]] = {
    "cuda": ["--runs", "3"],
    "cuda-quick": ["--runs", "1", "--resolutions", "256", "--dtypes", "float16", "--chunks", "65536"],
    "cpu": ["--cpu"],
    "cpu-quick": ["--cpu", "--runs", "1", "--resolutions", "32"],
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.triposr", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each case (median)")
    parser.add_argument(
        "--resolutions", type=int, nargs="+", help="marching-cubes grids (GPU: 256 384; CPU: 64 128 256)"
    )
    parser.add_argument(
        "--dtypes", nargs="+", choices=("float16", "float32"), help="GPU: float16 float32; CPU: float32"
    )
    parser.add_argument(
        "--chunks", type=int, nargs="+", help="density chunks (GPU: 8192 65536 262144; CPU: 65536)"
    )
    parser.add_argument("--cpu", action="store_true", help="the tiny CPU model even when a GPU is there")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be ≥ 1")
    measured = measure(args)
    print(measured.header)
    print(table(measured.rows))


def measure(args: argparse.Namespace, on_row: Callable[[Row], None] | None = None) -> Measured:
    """Time every case of ``args`` (build_parser's options); ``on_row`` sees each row as it is measured. On
    the CPU the tiny model is written to a temporary folder and loaded from there, like production."""
    gpu = torch.cuda.is_available() and not args.cpu
    with tempfile.TemporaryDirectory(prefix="triposr-bench-") as folder:
        return run_cases(args, gpu, Path(folder), on_row)


def run_cases(
    args: argparse.Namespace, gpu: bool, folder: Path, on_row: Callable[[Row], None] | None
) -> Measured:
    resolutions = args.resolutions or ((256, 384) if gpu else (64, 128, 256))
    dtypes = args.dtypes or (("float16", "float32") if gpu else ("float32",))
    chunks = args.chunks or ((8192, 65536, 262144) if gpu else (65536,))
    cases = [(resolution, dtype, chunk) for resolution in resolutions for dtype in dtypes for chunk in chunks]
    if gpu:
        device_name = torch.cuda.get_device_name()
        torch.manual_seed(0)
        model = build_model(load_config(PUBLISHED_CONFIG), "cuda")
        with torch.no_grad():
            shape_density_ball(model)
        model.eval().requires_grad_(False)
        make = lambda settings: TripoSR(settings, model=model)  # noqa: E731
        machine = f"{device_name}, torch {torch.__version__}, full-size TripoSR, random weights"
    else:
        build_tiny_triposr(folder / "models")
        settings_base: dict[str, Any] = {"data_dir": folder}
        make = None
        machine = (
            f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, tiny TripoSR (tests/tiny_triposr.py), CPU"
        )
    rows = []
    for resolution, dtype, chunk in cases:
        values: dict[str, Any] = {
            "triposr_mc_resolution": resolution,
            "triposr_dtype": dtype,
            "triposr_chunk_size": chunk,
            "triposr_device": "cuda" if gpu else "cpu",
        }
        backend = (
            make(ReconstructionSettings(**values))
            if make
            else TripoSR(ReconstructionSettings(**settings_base, **values))
        )
        timed = time_backend(backend, args.runs)
        row = Row(
            resolution,
            dtype,
            chunk,
            timed["seconds"],
            timed["model"],
            timed["mesh"],
            int(timed["faces"]),
            timed["peak_gib"] if gpu else None,
        )
        rows.append(row)
        if on_row:
            on_row(row)
    meta = {"machine": machine, "runs": args.runs, "gpu": gpu}
    return Measured(header=f"**Machine:** {machine}\n", rows=rows, meta=meta)


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| MC resolution | dtype | chunk | s / mesh | transformer (s) | mesh (s) | faces | peak GPU (GiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = f"{r.peak_gib:.2f}" if r.peak_gib is not None else "—"
        lines.append(
            f"| {r.resolution} | {r.dtype} | {r.chunk} | {r.seconds:.3f} | {r.model_seconds:.3f} | "
            f"{r.mesh_seconds:.3f} | {r.faces:,} | {peak} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
