"""FLUX.1-schnell through flux-service's own backend: seconds per image against the compute lower bound.

    .venv/bin/python -m benchmarks.flux                 # GPU when torch sees one, else the tiny CPU pipeline
    .venv/bin/python -m benchmarks.flux --peak-tflops 989
    .venv/bin/python -m benchmarks.flux --sizes 64 --batches 1 --steps 1 --repeats 1   # the quick check

On a GPU it builds FLUX.1-schnell at full size with random weights (the published configs: a 12B
transformer of 19 double and 38 single blocks, T5-XXL, CLIP-L, the 16-channel VAE; bf16, made directly
on the GPU, nothing downloaded; the tokenizers are the small ones the tests train, which changes no
shape), then draws 4 steps at 512² and 1024² in batches of 1 and 4 through DiffusersFlux.generate_batch.
Without a GPU it times the tiny test pipeline on the CPU instead (loaded from disk like production).

The lower bound is the transformer's matrix-multiply FLOPs (counted from the architecture, see
``transformer_flops``) over the GPU's dense bf16 peak; text encoders and the VAE are left out of the
bound but not out of the measured time, which is why a second column times the transformer alone.

``measure(args)`` returns the rows for a caller (``python -m benchmarks.gpu`` runs it with ``SUITE_ARGS``).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gpu import Measured

# The published configs of FLUX.1-schnell's components (transformer/config.json and friends).
FLUX1_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": False,  # True for FLUX.1-dev
    "axes_dims_rope": (16, 56, 56),
}
T5_XXL: dict[str, Any] = {
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
}
CLIP_L: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
FLUX_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 16,
    "norm_num_groups": 32,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}
# Dense bf16 peaks (no sparsity), TFLOPS, by a word of torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "A100": 312.0}


@dataclass(frozen=True)
class TransformerShape:
    """What the FLOP count needs of a FluxTransformer2DModel config."""

    in_channels: int
    out_channels: int
    double_blocks: int
    single_blocks: int
    width: int  # heads × head dim
    joint_attention_dim: int
    pooled_projection_dim: int
    guidance_embeds: bool
    mlp_ratio: float = 4.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TransformerShape:
        patch = config.get("patch_size", 1)
        return cls(
            in_channels=config["in_channels"],
            out_channels=patch * patch * (config.get("out_channels") or config["in_channels"]),
            double_blocks=config["num_layers"],
            single_blocks=config["num_single_layers"],
            width=config["num_attention_heads"] * config["attention_head_dim"],
            joint_attention_dim=config["joint_attention_dim"],
            pooled_projection_dim=config["pooled_projection_dim"],
            guidance_embeds=config.get("guidance_embeds", False),
        )


def transformer_flops(shape: TransformerShape, image_tokens: int, text_tokens: int) -> int:
    """Matrix-multiply FLOPs (2 per multiply-add) of one transformer forward pass, i.e. one step, for one
    image: image tokens (H/16)·(W/16), text tokens = the T5 sequence length (256 schnell, 512 dev).

    Every block, double or single, costs (8 + 4·mlp_ratio)·N·D² in its projections and 4·N²·D in joint
    attention over all N = image + text tokens (D = heads × head dim). Norms, RoPE, softmax and
    activations are elementwise and left out; biases too.
    """
    d, n = shape.width, image_tokens + text_tokens
    hidden = int(shape.mlp_ratio * d)
    # A double block: q, k, v, out for each stream + each stream's 2-layer MLP; a single block: q, k, v +
    # the MLP's first layer on all tokens, then one output projection from D + hidden back to D.
    double = 2 * n * d * (4 * d + 2 * hidden) + 4 * n * n * d
    single = 2 * n * d * (3 * d + hidden) + 2 * n * (d + hidden) * d + 4 * n * n * d
    tokens_in_out = 2 * image_tokens * d * (shape.in_channels + shape.out_channels)
    tokens_in_out += 2 * text_tokens * shape.joint_attention_dim * d
    # Per image, not per token: timestep (and guidance) embedding MLPs from 256 sinusoids, the pooled
    # CLIP projection, and the adaptive norms' modulation (6D per stream of a double block, 3D single, 2D
    # at the output).
    embedders = (2 if shape.guidance_embeds else 1) * 2 * (256 * d + d * d)
    embedders += 2 * (shape.pooled_projection_dim * d + d * d)
    modulation = 2 * d * d * (12 * shape.double_blocks + 3 * shape.single_blocks + 2)
    return (
        shape.double_blocks * double + shape.single_blocks * single + tokens_in_out + embedders + modulation
    )


def image_tokens(width: int, height: int) -> int:
    return (width // 16) * (height // 16)


def random_pipeline(transformer: dict, t5: dict, clip: dict, vae: dict, device: Any, dtype: Any):
    """A FluxPipeline of randomly initialised components of these configs, made directly on ``device``
    in ``dtype`` (a 12B transformer never exists in float32, nor on the CPU)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline  # its own module: see flux_loading.py
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from tests.tiny_flux import train_clip_tokenizer, train_t5_tokenizer

    clip_tokenizer, t5_tokenizer = train_clip_tokenizer(), train_t5_tokenizer()
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            components: dict[str, Any] = {
                "transformer": FluxTransformer2DModel(**transformer),
                "text_encoder_2": T5EncoderModel(T5Config(**t5)),
                "text_encoder": CLIPTextModel(
                    CLIPTextConfig(
                        **clip,
                        bos_token_id=clip_tokenizer.bos_token_id,
                        eos_token_id=clip_tokenizer.eos_token_id,
                        pad_token_id=clip_tokenizer.pad_token_id,
                    )
                ),
                "vae": AutoencoderKL(**vae),
            }
    finally:
        torch.set_default_dtype(previous)
    pipeline = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0),
        tokenizer=clip_tokenizer,
        tokenizer_2=t5_tokenizer,
        **components,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def backend_for(pipeline: Any, device: Any, dtype: Any, max_batch: int):
    """flux-service's DiffusersFlux around an in-memory pipeline: the same generate_batch as production."""
    from flux_service.backends.diffusers_flux import DiffusersFlux
    from flux_service.backends.flux_loading import LoadedFlux
    from flux_service.backends.flux_models import SCHNELL

    loaded = LoadedFlux(pipeline, Path("(in memory)"), device, dtype, "gpu", compiled=False)
    return DiffusersFlux(loaded, "black-forest-labs/FLUX.1-schnell", SCHNELL, max_batch)


class TransformerClock:
    """Time spent inside the transformer's forward passes (CUDA events on a GPU)."""

    def __init__(self, module: Any, cuda: bool) -> None:
        # (start, end) stamps: perf_counter seconds, or CUDA events on a GPU.
        self.cuda, self._open = cuda, None
        self.spans: list[tuple[Any, Any]] = []
        module.register_forward_pre_hook(lambda *_: self._mark(start=True))
        module.register_forward_hook(lambda *_: self._mark(start=False))

    def _mark(self, start: bool) -> None:
        import torch

        stamp: Any = time.perf_counter()
        if self.cuda:
            stamp = torch.cuda.Event(enable_timing=True)
            stamp.record()
        if start:
            self._open = stamp
        else:
            self.spans.append((self._open, stamp))

    def seconds(self) -> float:
        if self.cuda:
            return sum(a.elapsed_time(b) for a, b in self.spans) / 1000
        return sum(b - a for a, b in self.spans)


@dataclass
class Row:
    size: int
    batch: int
    seconds_per_image: float
    transformer_seconds_per_image: float
    tflop_per_image: float
    bound_seconds: float | None


def time_case(backend: Any, clock: TransformerClock, size: int, batch: int, steps: int, repeats: int) -> Row:
    import torch

    from flux_service.backends.base import ImageJob, RenderOptions

    jobs = [ImageJob(f"a product photo of object {i}, studio lighting", seed=i) for i in range(batch)]
    options = RenderOptions(size, size, steps=steps)
    backend.generate_batch(jobs, options)  # warm-up: allocator, kernels' autotuning
    synchronize = torch.cuda.synchronize if clock.cuda else (lambda: None)
    synchronize()
    clock.spans.clear()
    started = time.perf_counter()
    for _ in range(repeats):
        backend.generate_batch(jobs, options)
    synchronize()
    images = repeats * batch
    return Row(size, batch, (time.perf_counter() - started) / images, clock.seconds() / images, 0.0, None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flux", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="square sizes (GPU: 512 1024; CPU: 64 128)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: by name)")
    parser.add_argument("--cpu", action="store_true", help="the tiny CPU pipeline even when a GPU is there")
    return parser


# What `python -m benchmarks.gpu` runs of this benchmark (its own options), by device and --quick. The
# GPU run is the full default one (about a minute of timing after the build on an H100-class GPU).
SUITE_ARGS: dict[str, list[str]] = {
    "cuda": [],
    "cuda-quick": ["--sizes", "512", "--batches", "1", "--steps", "1", "--repeats", "1"],
    "cpu": ["--cpu"],
    "cpu-quick": ["--cpu", "--sizes", "64", "--batches", "1", "--steps", "1", "--repeats", "1"],
}


def measure(args: argparse.Namespace, on_row: Callable[[Row], None] | None = None) -> Measured:
    """Time every size × batch of ``args`` (build_parser's options); ``on_row`` sees each row as it is
    measured, so a caller that stops the run early keeps the rows so far."""
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    with tempfile.TemporaryDirectory() as folder:
        if cuda:
            device, dtype = torch.device("cuda"), torch.bfloat16
            pipeline = random_pipeline(FLUX1_TRANSFORMER, T5_XXL, CLIP_L, FLUX_VAE, device, dtype)
            backend = backend_for(pipeline, device, dtype, max(args.batches))
            name = torch.cuda.get_device_name()
            peak = args.peak_tflops or next((p for k, p in BF16_PEAK_TFLOPS.items() if k in name), None)
            sizes = args.sizes or [512, 1024]
        else:
            from flux_service.backends.diffusers_flux import DiffusersFlux
            from meshforge.settings import FluxSettings
            from tests.tiny_flux import build_tiny_flux

            build_tiny_flux(Path(folder) / "models")
            settings = FluxSettings(
                data_dir=Path(folder),
                flux_backend="diffusers",
                flux_device="cpu",
                flux_max_batch=max(args.batches),
            )
            backend = DiffusersFlux.from_settings(settings)
            pipeline, name, peak = (
                backend._pipeline,
                f"CPU ({platform.processor() or platform.machine()})",
                None,
            )
            sizes = args.sizes or [64, 128]
        shape = TransformerShape.from_config(dict(pipeline.transformer.config))
        text_tokens = backend.defaults.max_sequence_length
        clock = TransformerClock(pipeline.transformer, cuda)
        rows = []
        for size in sizes:
            for batch in args.batches:
                row = time_case(backend, clock, size, batch, args.steps, args.repeats)
                row.tflop_per_image = (
                    args.steps * transformer_flops(shape, image_tokens(size, size), text_tokens) / 1e12
                )
                row.bound_seconds = row.tflop_per_image / peak if peak else None
                rows.append(row)
                if on_row:
                    on_row(row)
    model = "FLUX.1-schnell, full size, random bf16 weights" if cuda else "tiny random FLUX pipeline, float32"
    header = f"device: {name}; {model}; {args.steps} steps; {text_tokens} text tokens\n" + (
        f"bf16 dense peak: {peak} TFLOPS\n"
        if peak
        else "bf16 peak: unknown, no lower bound (--peak-tflops)\n"
    )
    footer = (
        ""
        if cuda
        else "\nGPU figures pending: no GPU here. On a GPU this benchmark runs FLUX.1-schnell at full size."
    )
    meta = {
        "device": name,
        "model": model,
        "steps": args.steps,
        "text_tokens": text_tokens,
        "peak_tflops": peak,
    }
    return Measured(header=header, rows=rows, meta=meta, footer=footer)


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| size | batch | s/image | transformer s/image | transformer TFLOP/image | bound s/image "
        "| × bound | transformer × bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        bound = f"{r.bound_seconds:.3f}" if r.bound_seconds else "n/a"
        ratio = f"{r.seconds_per_image / r.bound_seconds:.2f}" if r.bound_seconds else "n/a"
        t_ratio = f"{r.transformer_seconds_per_image / r.bound_seconds:.2f}" if r.bound_seconds else "n/a"
        lines.append(
            f"| {r.size}² | {r.batch} | {r.seconds_per_image:.3f} | {r.transformer_seconds_per_image:.3f} | "
            f"{r.tflop_per_image:.4g} | {bound} | {ratio} | {t_ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    measured = measure(build_parser().parse_args(argv))
    print(measured.header)
    print(table(measured.rows))
    if measured.footer:
        print(measured.footer)


if __name__ == "__main__":
    main()
