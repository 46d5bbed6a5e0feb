"""InstantMesh through the reconstruction backend: seconds for Zero123++'s six views by step count, for the
LRM and for mesh extraction, and peak GPU memory.

    .venv/bin/python -m benchmarks.instantmesh             # GPU when torch sees one, else the tiny CPU models
    .venv/bin/python -m benchmarks.instantmesh --runs 3 --steps 75
    .venv/bin/python -m benchmarks.instantmesh --cpu --runs 1 --steps 1     # the quick check (CPU: ~15 s)
    .venv/bin/python -m benchmarks.instantmesh --steps 28 --lrm-dtypes bfloat16   # one case
    .venv/bin/python -m benchmarks.instantmesh --cpu --full-size --runs 1 --steps 1   # full size on the CPU

On a GPU it builds both models at full size with random weights directly on the GPU, nothing downloaded:
Zero123++ v1.2 (UNet 865.9 M, VAE 83.7 M, CLIP text 340.4 M and vision 632.1 M parameters, the published
folder's architecture, in --dtypes, float16 as upstream's run.py) and the InstantMesh LRM
(instant-mesh-large, 378.7 M, fp32 weights), whose few weights set by tests/tiny_instantmesh.py make the
SDF a ball, so FlexiCubes extracts a surface of realistic size. Random weights draw noise views, which cost
the same as real ones. It then times ``InstantMesh.reconstruct`` (six views, triplanes, FlexiCubes at grid
128, vertex colours, canonical frame) at 75 and 28 denoising steps, with the LRM's transformers in fp32
and bf16 autocast. Without a GPU it times the tiny test models, loaded from disk like production, on the
CPU (``--cpu`` does so even beside a GPU). Figures go to docs/performance.md. ``measure(args)`` returns
the rows for a caller (``python -m benchmarks.gpu`` runs it with ``SUITE_ARGS``).
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
import transformers
from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

from benchmarks.gpu import Measured
from meshforge.geometry.views import FRONT
from meshforge.settings import ReconstructionSettings
from reconstruction_service.backends.instantmesh import InstantMesh
from reconstruction_service.instantmesh.config import INSTANT_MESH_LARGE
from reconstruction_service.instantmesh.model import InstantMeshLRM, build_model
from reconstruction_service.instantmesh.zero123plus import Zero123Plus
from reconstruction_service.instantmesh.zero123plus_loading import Zero123PlusComponents
from tests.tiny_instantmesh import build_tiny_instantmesh, shape_sdf_ball
from tests.tiny_zero123plus import build_finetuned_unet, build_tiny_zero123plus, ramping_coefficients

# sudo-ai/zero123plus-v1.2's components (the published configs; their parameter counts are the above).
UNET: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "attention_head_dim": (5, 10, 20, 20),
    "use_linear_projection": True,
}
VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "scaling_factor": 0.18215,
}
TEXT: dict[str, Any] = {
    "vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23,
    "num_attention_heads": 16, "max_position_embeddings": 77, "hidden_act": "gelu", "projection_dim": 512,
}  # fmt: skip
VISION: dict[str, Any] = {
    "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16,
    "image_size": 224, "patch_size": 14, "projection_dim": 1024, "hidden_act": "gelu",
}  # fmt: skip
# The folder's image processors: CLIP at 224², the VAE's condition at 512², mean 0.5 and std 0.8.
CLIP_PROCESSOR: dict[str, Any] = {
    "size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "resample": 3,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
}  # fmt: skip
VAE_PROCESSOR: dict[str, Any] = {
    "size": {"shortest_edge": 512}, "crop_size": {"height": 512, "width": 512}, "resample": 2,
    "image_mean": 0.5, "image_std": 0.8,
}  # fmt: skip


def test_image(size: int = 512) -> np.ndarray:
    """A red disc on transparency: one object, as the image stage hands views over."""
    rows, cols = np.mgrid[:size, :size]
    image = np.zeros((size, size, 4), dtype=np.uint8)
    image[(rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (size / 3) ** 2] = (200, 40, 40, 255)
    return image


def full_size_zero123plus(folder: Path, dtype: torch.dtype, device: str) -> Zero123Plus:
    """Random full-size models on ``device``; the tokenizer and scheduler config from the tiny folder (they
    keep v1.2's settings, and "" tokenises to ids far inside the full vocabulary)."""
    tiny = build_tiny_zero123plus(folder)
    processor = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    with torch.device(device):
        models: dict[str, Any] = {
            "unet": UNet2DConditionModel(**UNET),
            "vae": AutoencoderKL(**VAE),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**TEXT)),
            "vision_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION)),
        }
    for model in models.values():
        model.to(dtype).eval().requires_grad_(False)
    scheduler = EulerAncestralDiscreteScheduler.from_config(
        EulerAncestralDiscreteScheduler.load_config(tiny / "scheduler"), timestep_spacing="trailing"
    )
    components = Zero123PlusComponents(
        folder=folder,
        scheduler=scheduler,
        tokenizer=CLIPTokenizer.from_pretrained(tiny / "tokenizer", local_files_only=True),
        feature_extractor_clip=processor(**CLIP_PROCESSOR),
        feature_extractor_vae=processor(**VAE_PROCESSOR),
        ramping_coefficients=tuple(ramping_coefficients()),
        unet_weights=None,
        **models,
    )
    return Zero123Plus(components)


def full_size_lrm(device: str) -> InstantMeshLRM:
    model = build_model(INSTANT_MESH_LARGE, device)
    with torch.no_grad():
        shape_sdf_ball(model.state_dict())  # the state dict's tensors are the parameters
    return model.eval().requires_grad_(False)


def time_backend(backend: InstantMesh, runs: int) -> dict[str, float]:
    image, cuda = test_image(), backend.device.type == "cuda"
    steps, backend.steps = backend.steps, 1
    backend.reconstruct([image], [FRONT], resolution=0)  # warm-up: kernels, autotuning, allocator
    backend.steps = steps
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    totals, parts = [], []
    for _ in range(runs):
        started = time.perf_counter()
        mesh, detail = backend.reconstruct([image], [FRONT], resolution=0)
        if cuda:
            torch.cuda.synchronize()
        totals.append(time.perf_counter() - started)
        parts.append(detail)
    return {
        "seconds": statistics.median(totals),
        **{
            key: statistics.median(d[key] for d in parts)
            for key in ("views_seconds", "lrm_seconds", "mesh_seconds")
        },
        "faces": len(mesh.faces),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
    }


@dataclass
class Row:
    steps: int
    dtype: str  # Zero123++'s models
    lrm_dtype: str  # the LRM's transformers (autocast); mesh extraction is fp32 always
    views_seconds: float  # median seconds for the six views
    lrm_seconds: float  # views → triplanes
    mesh_seconds: float  # FlexiCubes and vertex colours
    seconds: float  # median seconds per asset, all of it
    faces: int
    peak_gib: float | None  # peak GPU memory allocated; None on the CPU


# What `python -m benchmarks.gpu` runs of this benchmark (its own options), by device and --quick: on a
# GPU every case of the full run, with 2 timed runs each to fit its time budget.
SUITE_ARGS: dict[str, list[str]] = {
    "cuda": ["--runs", "2"],
    "cuda-quick": ["--runs", "1", "--steps", "75", "--lrm-dtypes", "float32"],
    "cpu": ["--cpu"],
    "cpu-quick": ["--cpu", "--runs", "1", "--steps", "1"],
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instantmesh", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each case (median)")
    parser.add_argument(
        "--steps", type=int, nargs="+", help="Zero123++ denoising steps (GPU: 75 28; CPU: 1 4)"
    )
    dtypes = ("float16", "bfloat16", "float32")
    parser.add_argument("--dtypes", nargs="+", choices=dtypes, help="Zero123++ (GPU: float16; CPU: float32)")
    parser.add_argument(
        "--lrm-dtypes", nargs="+", choices=dtypes, help="the LRM (GPU: float32 bfloat16; CPU: float32)"
    )
    parser.add_argument("--cpu", action="store_true", help="the tiny CPU models even when a GPU is there")
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="with --cpu: the full-size random models on the CPU (about 10 GB of memory, minutes per step)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs < 1 or any(steps < 1 for steps in args.steps or ()):
        parser.error("--runs and --steps must be ≥ 1")
    measured = measure(args)
    print(measured.header)
    print(table(measured.rows))
    print(measured.footer)


def measure(args: argparse.Namespace, on_row: Callable[[Row], None] | None = None) -> Measured:
    """Time every case of ``args`` (build_parser's options); ``on_row`` sees each row as it is measured.
    On the CPU the tiny models are written to a temporary folder and loaded from there, like production."""
    gpu = torch.cuda.is_available() and not args.cpu
    with tempfile.TemporaryDirectory(prefix="instantmesh-bench-") as folder:
        return run_cases(args, gpu, Path(folder), on_row)


def run_cases(
    args: argparse.Namespace, gpu: bool, folder: Path, on_row: Callable[[Row], None] | None
) -> Measured:
    steps_list = args.steps or ((75, 28) if gpu else (1, 4))
    dtypes = args.dtypes or (("float16",) if gpu else ("float32",))
    lrm_dtypes = args.lrm_dtypes or (("float32", "bfloat16") if gpu else ("float32",))
    device = "cuda" if gpu else "cpu"
    full_size = gpu or args.full_size
    base: dict[str, Any] = {"data_dir": folder, "instantmesh_device": device}
    lrm: InstantMeshLRM | None = None
    if full_size:
        torch.manual_seed(0)
        lrm = full_size_lrm(device)
        name = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
        machine = f"{name}, torch {torch.__version__}, full-size models, random weights"
    else:
        build_tiny_zero123plus(folder / "models")
        build_finetuned_unet(folder / "models")
        build_tiny_instantmesh(folder / "models", ball=True)
        machine = (
            f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
            f"{torch.__version__}, tiny Zero123++ and InstantMesh (tests/tiny_*.py), CPU"
        )
    rows = []
    for dtype in dtypes:
        pipeline = full_size_zero123plus(folder / dtype, getattr(torch, dtype), device) if full_size else None
        for lrm_dtype in lrm_dtypes:
            for steps in steps_list:
                values = {
                    **base,
                    "zero123plus_steps": steps,
                    "zero123plus_dtype": dtype,
                    "instantmesh_dtype": lrm_dtype,
                }
                settings = ReconstructionSettings(**values)
                backend = (
                    InstantMesh(settings, pipeline=pipeline, lrm=lrm) if full_size else InstantMesh(settings)
                )
                timed = time_backend(backend, args.runs)
                row = Row(
                    steps,
                    dtype,
                    lrm_dtype,
                    timed["views_seconds"],
                    timed["lrm_seconds"],
                    timed["mesh_seconds"],
                    timed["seconds"],
                    int(timed["faces"]),
                    timed["peak_gib"] if gpu else None,
                )
                rows.append(row)
                if on_row:
                    on_row(row)
        del pipeline
    meta = {"machine": machine, "runs": args.runs, "gpu": gpu}
    footer = "Random weights: the six views are noise, which costs Zero123++ what real views cost."
    return Measured(header=f"**Machine:** {machine}\n", rows=rows, meta=meta, footer=footer)


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| steps | Zero123++ dtype | LRM dtype | 6 views (s) | LRM (s) | mesh (s) | s / asset | faces "
        "| peak GPU (GiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak = f"{r.peak_gib:.2f}" if r.peak_gib is not None else "—"
        lines.append(
            f"| {r.steps} | {r.dtype} | {r.lrm_dtype} | {r.views_seconds:.3f} | {r.lrm_seconds:.3f} | "
            f"{r.mesh_seconds:.3f} | {r.seconds:.3f} | {r.faces:,} | {peak} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
