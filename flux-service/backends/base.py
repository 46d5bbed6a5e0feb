"""The text-to-image backend interface of flux-service."""

from __future__ import annotations

from typing import Protocol

from PIL import Image


class ImageGenerator(Protocol):
    """Turns one prompt into one image. Loaded once per process and kept hot."""

    name: str

    def generate(
        self, prompt: str, width: int, height: int, seed: int | None, view: str | None
    ) -> Image.Image:
        """Render ``prompt``; ``view`` names the canonical view the prompt asks for, when known."""
        ...
