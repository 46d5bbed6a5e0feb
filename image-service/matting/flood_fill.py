"""The offline matting backend for plain backgrounds: flood fill from the image border.

The background colour is the median of the border pixels; every pixel close to it and connected to the
border through such pixels is background (``meshforge.geometry.silhouette``). It needs no weights and is
exact for studio shots and for FLUX views drawn on the neutral grey the prompts ask for, and it fails on
busy backgrounds (a room, a landscape, a gradient with texture): use the ``onnx`` backend there.
"""

from __future__ import annotations

import numpy as np

from meshforge.geometry.silhouette import foreground_mask


class FloodFillMatting:
    name = "flood_fill"

    def __init__(self, tolerance: float = 30.0) -> None:
        self.tolerance = tolerance
        self.detail: dict[str, str] = {}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        rgb = np.asarray(image)[..., :3]  # the colour key decides; an opaque alpha says nothing
        return foreground_mask(rgb, tolerance=self.tolerance).astype(np.float32)
