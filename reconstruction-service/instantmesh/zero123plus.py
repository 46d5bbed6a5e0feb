"""Zero123++ v1.2, our own pipeline on diffusers building blocks: one image → six views at 320².

What upstream's custom pipeline (InstantMesh's zero123plus/pipeline.py, on diffusers'
StableDiffusionPipeline) computes, step by step, with every choice traced in docs/instantmesh.md:

1. The condition image (RGBA composited on white) is prepared twice by the folder's CLIP image
   processors: for the VAE (320², mean/std 0.5) and for the CLIP vision encoder.
2. Its VAE latent (a posterior *sample*, unscaled) is the reference; with guidance the empty
   condition (an all-zero pixel tensor) gives the negative reference.
3. The prompt is the empty string's text-encoder states; the conditional half adds the CLIP image
   embedding scaled per token by ``ramping_coefficients``.
4. Euler-ancestral sampling (v-prediction) of a 960×640 latent grid; before each UNet pass the
   references, noised to the step's sigma, go through the UNet to fill the reference attention.
5. Classifier-free guidance ``uncond + g·(cond − uncond)``, then the latent unscale/shift, the VAE
   decode and the image unscale, and the 3×2 grid split into views (view k = row·2 + col).

All noise comes from one CPU generator seeded by ``seed``, drawn in upstream's order (condition
sample, negative sample, initial latents, then per step the reference noise and the ancestral
noise), so the views do not depend on the device, and the tiny conformance run matches upstream
seeded the same way. Latents and the scheduler arithmetic stay in fp32; the models run in their dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.schedulers.scheduling_euler_ancestral_discrete import EulerAncestralDiscreteScheduler
from PIL import Image

from meshforge.cancellation import check_cancelled
from meshforge.errors import InvalidInput
from reconstruction_service.instantmesh.zero123plus_attention import BankMode, install_reference_attention
from reconstruction_service.instantmesh.zero123plus_loading import Zero123PlusComponents

GRID_ROWS, GRID_COLS = 3, 2
VIEW_SIZE = 320
GRID_HEIGHT, GRID_WIDTH = GRID_ROWS * VIEW_SIZE, GRID_COLS * VIEW_SIZE  # 960 × 640, upstream's default
VIEW_COUNT = GRID_ROWS * GRID_COLS
DEFAULT_STEPS = 75  # InstantMesh's run.py --diffusion_steps (the pipeline's own default is 28)
DEFAULT_GUIDANCE = 4.0  # the pipeline's guidance_scale default
WHITE = (255, 255, 255)  # InstantMesh composites RGBA on white (its UNet is the white-background one)
# Upstream's unscale_latents / unscale_image constants: latents / 0.75 + 0.22, image / 0.5 * 0.8.
LATENT_SCALE, LATENT_SHIFT = 0.75, 0.22
IMAGE_UNSCALE_DIVISOR, IMAGE_UNSCALE_FACTOR = 0.5, 0.8

StepCallback = Callable[[int, int], None]  # (steps done, steps in all), after each denoising step


@dataclass
class MultiViewImages:
    grid: np.ndarray  # (960, 640, 3) uint8: 3 rows × 2 columns of views
    views: np.ndarray  # (6, 320, 320, 3) uint8, view k = row·2 + col
    latents: torch.Tensor  # the sampled latents (1, 4, 120, 80) before unscaling, fp32 on the CPU
    seed: int
    steps: int
    guidance: float

    def view_images(self) -> list[Image.Image]:
        return [Image.fromarray(view) for view in self.views]


def condition_image(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """RGB as it is; transparency composited on ``background`` with PIL's alpha paste, as upstream's
    to_rgb_image does. Other modes (L, P, …) are converted, where upstream refuses them."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        composed = Image.new("RGB", rgba.size, background)
        composed.paste(rgba, mask=rgba.getchannel("A"))
        return composed
    return image.convert("RGB")


def split_views(grid: np.ndarray) -> np.ndarray:
    """(3·S, 2·S, C) → (6, S, S, C), view k = row·2 + col (run.py's '(n h) (m w) → (n m)' split)."""
    rows, cols = grid.shape[0] // GRID_ROWS, grid.shape[1] // GRID_COLS
    tiles = grid.reshape(GRID_ROWS, rows, GRID_COLS, cols, *grid.shape[2:])
    return np.ascontiguousarray(tiles.swapaxes(1, 2).reshape(VIEW_COUNT, rows, cols, *grid.shape[2:]))


class Zero123Plus:
    """The loaded pipeline: ``generate`` turns one condition image into the six views."""

    def __init__(self, components: Zero123PlusComponents) -> None:
        self.components = components
        self.unet = components.unet
        self.bank = install_reference_attention(components.unet)
        self.device = components.unet.device
        self.dtype = components.unet.dtype
        self.vae_scale_factor = 2 ** (len(components.vae.config["block_out_channels"]) - 1)

    @torch.no_grad()
    def generate(
        self,
        image: Image.Image,
        *,
        seed: int,
        steps: int = DEFAULT_STEPS,
        guidance: float = DEFAULT_GUIDANCE,
        on_step: StepCallback | None = None,
    ) -> MultiViewImages:
        """Six views of ``image``. Between denoising steps a cancelled job stops (JobCancelled), and
        ``on_step`` may stop it too by raising."""
        if steps < 1:
            raise InvalidInput(f"Zero123++ needs at least one denoising step, not {steps}")
        generator = torch.Generator("cpu").manual_seed(seed)
        rgb = condition_image(image)
        vae_pixels = self._pixels(self.components.feature_extractor_vae, rgb)
        clip_pixels = self._pixels(self.components.feature_extractor_clip, rgb)
        guided = guidance > 1.0
        references = self._sample_latent(vae_pixels, generator)
        if guided:
            empty = self._sample_latent(torch.zeros_like(vae_pixels), generator)
            references = torch.cat([empty, references])
        prompt = self._prompt_states(clip_pixels, guided)
        latents = self._denoise(references, prompt, steps, guidance if guided else None, generator, on_step)
        check_cancelled()
        grid = self._decode(latents)
        return MultiViewImages(grid, split_views(grid), latents.cpu(), seed, steps, guidance)

    def _pixels(self, processor: Any, rgb: Image.Image) -> torch.Tensor:
        pixels = processor(images=rgb, return_tensors="pt").pixel_values
        return pixels.to(device=self.device, dtype=self.components.vae.dtype)

    def _sample_latent(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A sample of the VAE posterior, unscaled, as upstream's encode_condition_image."""
        posterior = self.components.vae.encode(pixels).latent_dist
        noise = _noise(posterior.mean.shape, generator).to(self.device, posterior.mean.dtype)
        return posterior.mean + posterior.std * noise

    def _prompt_states(self, clip_pixels: torch.Tensor, guided: bool) -> torch.Tensor:
        """[empty prompt, empty prompt + ramped image embedding] (or only the latter, unguided)."""
        c = self.components
        tokens = c.tokenizer(
            "",
            padding="max_length",
            max_length=c.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        mask = (
            tokens.attention_mask.to(self.device)
            if getattr(c.text_encoder.config, "use_attention_mask", False)
            else None
        )
        empty = c.text_encoder(tokens.input_ids.to(self.device), attention_mask=mask)[0]
        image_embeds = c.vision_encoder(clip_pixels.to(c.vision_encoder.dtype)).image_embeds.unsqueeze(-2)
        ramp = image_embeds.new_tensor(c.ramping_coefficients).unsqueeze(-1)
        conditioned = empty + image_embeds * ramp
        states = torch.cat([empty, conditioned]) if guided else conditioned
        return states.to(self.dtype)

    def _denoise(
        self,
        references: torch.Tensor,
        prompt: torch.Tensor,
        steps: int,
        guidance: float | None,
        generator: torch.Generator,
        on_step: StepCallback | None,
    ) -> torch.Tensor:
        # A scheduler of our own per call: Euler-ancestral keeps its step index inside.
        scheduler = EulerAncestralDiscreteScheduler.from_config(self.components.scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)
        shape = (
            1,
            self.unet.config["in_channels"],
            GRID_HEIGHT // self.vae_scale_factor,
            GRID_WIDTH // self.vae_scale_factor,
        )
        latents = _noise(shape, generator).to(self.device) * scheduler.init_noise_sigma
        try:
            for done, timestep in enumerate(scheduler.timesteps):
                check_cancelled()
                model_input = torch.cat([latents] * 2) if guidance is not None else latents
                model_input = scheduler.scale_model_input(model_input, timestep)
                self._reference_pass(scheduler, references, timestep, prompt, generator)
                self.bank.mode = BankMode.READ
                prediction = self.unet(
                    model_input.to(self.dtype), timestep, encoder_hidden_states=prompt
                ).sample
                self.bank.clear()
                prediction = prediction.float()
                if guidance is not None:
                    unconditional, conditional = prediction.chunk(2)
                    prediction = unconditional + guidance * (conditional - unconditional)
                latents = scheduler.step(prediction, timestep, latents, generator=generator).prev_sample
                if on_step is not None:
                    on_step(done + 1, steps)
        finally:
            self.bank.clear()
        return latents

    def _reference_pass(
        self,
        scheduler: EulerAncestralDiscreteScheduler,
        references: torch.Tensor,
        timestep: torch.Tensor,
        prompt: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        """The references noised to this step's sigma and scaled like the model input, through the UNet
        at the same timestep, every attn1 recording its input (upstream's RefOnlyNoisedUNet, eval)."""
        noise = _noise(references.shape, generator).to(self.device, references.dtype)
        noisy = scheduler.add_noise(references, noise, timestep.reshape(-1))
        noisy = scheduler.scale_model_input(noisy, timestep)
        self.bank.mode = BankMode.WRITE
        self.unet(noisy.to(self.dtype), timestep, encoder_hidden_states=prompt)

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        vae = self.components.vae
        unscaled = latents / LATENT_SCALE + LATENT_SHIFT
        decoded = vae.decode((unscaled / vae.config["scaling_factor"]).to(vae.dtype)).sample
        image = decoded.float() / IMAGE_UNSCALE_DIVISOR * IMAGE_UNSCALE_FACTOR
        image = (image / 2 + 0.5).clamp(0, 1)  # VaeImageProcessor's denormalise
        pixels = (image[0].permute(1, 2, 0) * 255).round().to(torch.uint8)
        return pixels.cpu().numpy()


def _noise(shape: tuple[int, ...] | torch.Size, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
