"""The matting interface: one view image → the object's alpha matte."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Matting(Protocol):
    """Separates the object from its background in one image. Loaded once per process, kept hot."""

    name: str  # the name it is configured by (MESHFORGE_MATTING_BACKEND)
    detail: dict[str, str]  # what a result and /health say of it besides the name (the model file)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The matte of ``image`` ((H, W, 3) RGB or (H, W, 4) RGBA uint8) as (H, W) float in 0..1.

        1 is object, 0 background; values between are soft edges. Raises ``InvalidInput`` when the
        image cannot hold an object (too small, wrong shape).
        """
        ...
