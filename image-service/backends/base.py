"""The image stage's backend interface: a prompt and a set of canonical views → one image per view."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from meshforge.geometry.views import CanonicalView


class ViewGenerator(Protocol):
    name: str

    async def generate(
        self, prompt: str, views: tuple[CanonicalView, ...], image_size: int, seed: int | None, folder: Path
    ) -> tuple[list[Path], str]:
        """Write one image per view into ``folder``; returns the paths and the model that drew them."""
        ...
