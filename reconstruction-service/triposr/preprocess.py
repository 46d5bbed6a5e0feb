"""The conditioning image TripoSR was trained on: one object, cropped and centred so it spans 85% of the
frame, on 50% grey. The cropping is the image stage's normalisation (meshforge.geometry.normalise);
only the grey level differs (upstream composites on exactly 0.5, our views on RGB 128)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from meshforge.geometry.normalise import normalise_views

CONDITION_SIZE = 512
GREY = 0.5


def condition_image(rgba: np.ndarray, size: int = CONDITION_SIZE) -> np.ndarray:
    """(H, W, 4) uint8 view → (size, size, 3) uint8; InvalidInput when no object is found."""
    (normalised,) = normalise_views([Image.fromarray(rgba)], size)
    rgb = normalised[..., :3].astype(np.float32) / 255.0
    alpha = normalised[..., 3:4].astype(np.float32) / 255.0
    composite = rgb * alpha + GREY * (1.0 - alpha)
    # Upstream writes the composite to an 8-bit image before the model reads it; truncation included.
    return (composite * 255.0).astype(np.uint8)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, H, W, 3) float in 0..1, the model's input."""
    return torch.from_numpy(image.astype(np.float32) / 255.0).unsqueeze(0).to(device)
