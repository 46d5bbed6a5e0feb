"""The text-to-image backend interface of flux-service: a batch of images per call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from meshforge.schemas import Capabilities


@dataclass(frozen=True)
class ImageJob:
    """One image to draw. ``seed`` is always set: the service draws one when the caller gave none."""

    prompt: str
    seed: int
    view: str | None = None


@dataclass(frozen=True)
class RenderOptions:
    """What every image of one call shares; ``None`` means the backend's (model's) default."""

    width: int
    height: int
    steps: int | None = None
    guidance: float | None = None


@dataclass
class Rendered:
    """The images, in the order of the jobs, and what was actually used to draw them."""

    images: list[Image.Image]
    steps: int | None = None
    guidance: float | None = None
    pipeline_calls: int = 1


class ImageGenerator(Protocol):
    """Turns prompts into images. Loaded once per process and kept hot.

    ``generate_batch`` draws every job with the same options; a model backend batches them into as few
    model calls as it may (at most ``max_batch`` images each). The image of a job depends only on its
    prompt, seed and the options, never on the other jobs of the batch.
    """

    name: str  # the name it is configured by (MESHFORGE_FLUX_BACKEND)
    max_batch: int
    capabilities: Capabilities  # advertised in /health: image-service asks whether views are posed
    detail: dict[str, Any]  # what /health reports besides the name (device, model folder, defaults)

    def generate_batch(self, jobs: Sequence[ImageJob], options: RenderOptions) -> Rendered: ...


def chunked(jobs: Sequence[ImageJob], size: int) -> list[Sequence[ImageJob]]:
    """Consecutive chunks of at most ``size`` jobs: one model call each."""
    return [jobs[start : start + size] for start in range(0, len(jobs), size)]
