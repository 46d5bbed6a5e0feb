"""Loading FLUX.1 from models/ into a hot diffusers FluxPipeline, once per process, with no network.

The model folder is found by meshforge.models.locate_model (a plain folder or the Hugging Face cache
layout scripts/download-models writes); a missing model stops the service at start-up with a message
that says where it looked and how to download it. The hub is switched off for the whole process before
diffusers is imported, and every load is ``local_files_only``.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshforge.accelerator import pick_device, pick_dtype
from meshforge.errors import InvalidInput
from meshforge.models import locate_model
from meshforge.settings import FluxSettings

# FluxPipeline from its own module: to a type checker, diffusers' top-level FluxPipeline is the
# placeholder class of its "transformers is not installed" fallback.
if TYPE_CHECKING:
    import torch
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

log = logging.getLogger(__name__)


@dataclass
class LoadedFlux:
    pipeline: FluxPipeline
    folder: Path
    device: torch.device
    dtype: torch.dtype
    memory_mode: str
    compiled: bool


def go_offline() -> None:
    """No hub at all in this process: huggingface_hub reads these when it is first imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


def find_flux_folder(settings: FluxSettings) -> Path:
    """The folder holding the pipeline's model_index.json, or ModelNotFound."""
    return locate_model(
        settings.models_path,
        settings.flux_model,
        required=("model_index.json",),
        explicit=settings.flux_model_path,
        setting="MESHFORGE_FLUX_MODEL_PATH",
    )


def load_flux(settings: FluxSettings) -> LoadedFlux:
    folder = find_flux_folder(settings)  # before the slow imports: a missing model fails fast
    go_offline()
    import diffusers
    import transformers
    from diffusers import FluxPipeline

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    device = pick_device(settings.flux_device)
    dtype = pick_dtype(settings.flux_dtype, device)
    mode = settings.flux_memory_mode
    if mode != "gpu" and device.type != "cuda":
        raise InvalidInput(
            f"MESHFORGE_FLUX_MEMORY_MODE={mode} moves weights between the CPU and a GPU, but flux-service "
            f"runs on {device}; use the gpu mode (the default) on a CPU"
        )
    log.info("loading %s from %s on %s as %s (%s)", settings.flux_model, folder, device, dtype, mode)
    with warnings.catch_warnings():  # diffusers 0.42 renames torch_dtype to dtype; older ones lack dtype
        warnings.filterwarnings("ignore", "`torch_dtype` is deprecated", FutureWarning)
        pipeline = FluxPipeline.from_pretrained(folder, local_files_only=True, torch_dtype=dtype)
    pipeline.set_progress_bar_config(disable=True)
    if mode == "gpu":
        pipeline.to(device)
    elif mode == "model_offload":  # whole models move to the GPU when used: ~24 GB peak instead of ~34
        pipeline.enable_model_cpu_offload(device=device)
    else:  # sequential_offload: layer by layer, a few GB of GPU memory, several times slower
        pipeline.enable_sequential_cpu_offload(device=device)
    if settings.flux_compile:
        # In place, so the pipeline keeps its module; the first call at each size compiles (minutes).
        pipeline.transformer.compile()
    return LoadedFlux(pipeline, folder, device, dtype, mode, settings.flux_compile)
