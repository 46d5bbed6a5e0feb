"""TripoSR through the reconstruction backend: seconds per mesh and peak GPU memory.

    .venv/bin/python -m benchmarks.triposr            # GPU when torch sees one, else the tiny CPU model
    .venv/bin/python -m benchmarks.triposr --runs 5 --resolutions 256
    .venv/bin/python -m benchmarks.triposr --runs 1 --resolutions 32     # the quick check (CPU: ~5 s)

On a GPU it builds TripoSR at full size (the published config, 419 M parameters) with random weights
directly on the GPU, nothing downloaded, and sets the few weights that make the density field a ball
(tests/tiny_triposr.py), so marching cubes has a surface of realistic size to extract, as a real object
would give. It then times ``TripoSR.reconstruct`` (conditioning image, transformer, density grid,
marching cubes, vertex colours, canonical frame) at marching-cubes resolution 256 and 384, in fp16
autocast and fp32, with the default and a large density chunk. Without a GPU it times the tiny test
model, loaded from disk like production, on the CPU, at resolution 64, 128 and 256 (``--cpu`` does so even
beside a GPU). Figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each case (median)")
    parser.add_argument(
        "--resolutions", type=int, nargs="+", help="marching-cubes grids (GPU: 256 384; CPU: 64 128 256)"
    )
    parser.add_argument("--cpu", action="store_true", help="the tiny CPU model even when a GPU is there")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be ≥ 1")
    gpu = torch.cuda.is_available() and not args.cpu
    with tempfile.TemporaryDirectory(prefix="triposr-bench-") as folder:
        run_cases(args.runs, args.resolutions, gpu, Path(folder))


def run_cases(runs: int, resolutions: list[int] | None, gpu: bool, folder: Path) -> None:
    """Print the table; on the CPU the tiny model is written to ``folder`` and loaded from there."""
    if gpu:
        device_name = torch.cuda.get_device_name()
        torch.manual_seed(0)
        model = build_model(load_config(PUBLISHED_CONFIG), "cuda")
        with torch.no_grad():
            shape_density_ball(model)
        model.eval().requires_grad_(False)
        cases = [
            (resolution, dtype, chunk)
            for resolution in resolutions or (256, 384)
            for dtype in ("float16", "float32")
            for chunk in (8192, 65536, 262144)
        ]
        make = lambda settings: TripoSR(settings, model=model)  # noqa: E731
        print(f"**Machine:** {device_name}, torch {torch.__version__}, full-size TripoSR, random weights\n")
    else:
        build_tiny_triposr(folder / "models")
        settings_base: dict[str, Any] = {"data_dir": folder}
        cases = [(resolution, "float32", 65536) for resolution in resolutions or (64, 128, 256)]
        make = None
        print(
            f"**Machine:** {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}, tiny TripoSR (tests/tiny_triposr.py), CPU\n"
        )
    print(
        "| MC resolution | dtype | chunk | s / mesh | transformer (s) | mesh (s) | faces | peak GPU (GiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
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
        row = time_backend(backend, runs)
        peak = f"{row['peak_gib']:.2f}" if gpu else "—"
        print(
            f"| {resolution} | {dtype} | {chunk} | {row['seconds']:.3f} | {row['model']:.3f} | "
            f"{row['mesh']:.3f} | {row['faces']:,} | {peak} |"
        )


if __name__ == "__main__":
    main()
