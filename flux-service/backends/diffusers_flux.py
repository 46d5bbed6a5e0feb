"""FLUX.1-schnell / dev through diffusers' FluxPipeline: the production text-to-image backend.

Images of one call are drawn in batched pipeline calls of at most flux_max_batch, since one batched
call on a GPU beats several single ones. Every image has its own torch.Generator seeded with its own
seed, on the CPU, so its starting noise, and so its picture, does not depend on the device or on the
other images of the batch: same prompt, seed, size, steps and guidance → same image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from flux_service.backends.base import ImageJob, Rendered, RenderOptions, chunked
from flux_service.backends.flux_loading import LoadedFlux, load_flux
from flux_service.backends.flux_models import ModelDefaults, check_size, defaults_for
from meshforge.cancellation import check_cancelled, report_progress
from meshforge.errors import InvalidInput, JobCancelled
from meshforge.schemas import Capabilities
from meshforge.settings import FluxSettings


class DiffusersFlux:
    def __init__(self, loaded: LoadedFlux, model_id: str, defaults: ModelDefaults, max_batch: int) -> None:
        self._loaded = loaded
        self._pipeline = loaded.pipeline
        self.defaults = defaults
        self.max_batch = max_batch
        self.name = "diffusers"  # the configured name; which model runs is in the detail
        self.capabilities = Capabilities(batch=max_batch > 1)
        # 8× VAE downsampling × 2×2 packing for the published models; the tiny test pipeline too.
        self.size_multiple = 2 * self._pipeline.vae_scale_factor
        self.detail: dict[str, Any] = {
            "model": model_id,
            "folder": str(loaded.folder),
            "device": str(loaded.device),
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "memory_mode": loaded.memory_mode,
            "compiled": loaded.compiled,
            "steps": defaults.steps,
            "guidance": defaults.guidance,
            "max_sequence_length": defaults.max_sequence_length,
            "max_batch": max_batch,
        }

    @classmethod
    def from_settings(cls, settings: FluxSettings) -> DiffusersFlux:
        loaded = load_flux(settings)
        guidance_embeds = bool(loaded.pipeline.transformer.config.get("guidance_embeds", False))
        model_defaults = defaults_for(settings.flux_model, guidance_embeds)
        defaults = ModelDefaults(
            steps=settings.flux_steps or model_defaults.steps,
            guidance=model_defaults.guidance if settings.flux_guidance is None else settings.flux_guidance,
            max_sequence_length=model_defaults.max_sequence_length,
        )
        return cls(loaded, settings.flux_model, defaults, settings.flux_max_batch)

    def generate_batch(self, jobs: Sequence[ImageJob], options: RenderOptions) -> Rendered:
        import torch

        check_size(options.width, options.height, self.size_multiple)
        if not jobs:
            raise InvalidInput("no images were asked for")
        steps = options.steps or self.defaults.steps
        guidance = self.defaults.guidance if options.guidance is None else options.guidance
        images = []
        chunks = chunked(jobs, self.max_batch)
        for index, chunk in enumerate(chunks):
            check_cancelled()
            output = self._call_pipeline(
                _StepCounter(index * steps, len(chunks) * steps),
                prompt=[job.prompt for job in chunk],
                width=options.width,
                height=options.height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                max_sequence_length=self.defaults.max_sequence_length,
                generator=[torch.Generator("cpu").manual_seed(job.seed) for job in chunk],
                output_type="pil",
            )
            images.extend(output.images)
        return Rendered(images, steps=steps, guidance=guidance, pipeline_calls=len(chunks))

    def _call_pipeline(self, on_step: _StepCounter, **arguments: Any) -> Any:
        """One pipeline call that a cancelled job leaves between two denoising steps."""
        try:
            return self._pipeline(**arguments, callback_on_step_end=on_step)
        except JobCancelled:
            # The pipeline skipped its own tidying up; offloaded models go back where they belong.
            self._pipeline.maybe_free_model_hooks()
            raise

    def warm_up(self) -> float:
        """One small image, so the first request does not pay for lazy CUDA/cuDNN set-up; seconds taken."""
        started = time.monotonic()
        side = 2 * self.size_multiple
        self.generate_batch([ImageJob("warm-up", 0)], RenderOptions(side, side, steps=1))
        return time.monotonic() - started


class _StepCounter:
    """diffusers' step-end callback: the safe point between denoising steps, where the call's progress
    is its denoising steps so far, over every pipeline call of the request (``before`` were done by the
    earlier ones). It raises rather than set ``pipeline._interrupt``, which would skip the remaining
    steps but still decode the latents."""

    def __init__(self, before: int, total: int) -> None:
        self.before = before
        self.total = total

    def __call__(self, pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        check_cancelled()
        report_progress(self.before + step + 1, self.total, "steps")
        return tensors
