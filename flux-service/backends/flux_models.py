"""What differs between the FLUX.1 models: sampling defaults, and the image sizes FLUX can draw.

Pure functions (no torch), so they are cheap to test and to import.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshforge.errors import InvalidInput

# The VAE downsamples 8×, and the transformer packs 2×2 latent pixels into one token: 16 pixels a side.
FLUX_SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class ModelDefaults:
    """Sampling defaults the model was distilled or trained for."""

    steps: int
    guidance: float
    max_sequence_length: int  # T5 tokens of the prompt


# FLUX.1-schnell is timestep-distilled: 4 steps, no guidance, prompts up to 256 T5 tokens.
SCHNELL = ModelDefaults(steps=4, guidance=0.0, max_sequence_length=256)
# FLUX.1-dev is guidance-distilled: the guidance scale is an input of the transformer, not classifier-free
# guidance, so one pass per step; ~50 steps, guidance 3.5, prompts up to 512 T5 tokens.
DEV = ModelDefaults(steps=50, guidance=3.5, max_sequence_length=512)


def defaults_for(model_id: str, guidance_embeds: bool) -> ModelDefaults:
    """Defaults for ``model_id``; for a name that says neither, what the weights say (dev-like models
    take the guidance scale as an input: ``guidance_embeds`` in the transformer's config)."""
    name = model_id.lower()
    if "schnell" in name:
        return SCHNELL
    if "dev" in name:
        return DEV
    return DEV if guidance_embeds else SCHNELL


def check_size(width: int, height: int, multiple: int = FLUX_SIZE_MULTIPLE) -> None:
    """Refuse sizes FLUX cannot draw exactly (diffusers would silently resize them)."""
    bad = [(axis, value) for axis, value in (("width", width), ("height", height)) if value % multiple]
    if not bad:
        return
    details = ", ".join(
        f"{axis} {value} (use {value // multiple * multiple} or {(value // multiple + 1) * multiple})"
        for axis, value in bad
    )
    raise InvalidInput(
        f"FLUX draws images whose width and height are multiples of {multiple} pixels (its VAE "
        f"downsamples 8× and its transformer takes 2×2 latent patches); got {width}×{height}: {details}"
    )
