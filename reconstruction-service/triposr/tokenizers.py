"""The two token sources: the image (through DINO) and the learned triplane queries."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction_service.triposr.config import ViTConfig
from reconstruction_service.triposr.vit import DinoViT

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageTokenizer(nn.Module):
    """RGB in 0..1 → DINO's last hidden state, the backbone's cross-attention context."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.model = DinoViT(cfg)
        # Not in the checkpoint (upstream registers them non-persistent): made here, on every load.
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def reset_buffers(self, device: torch.device) -> None:
        """Recreate the constants after the parameters were loaded into a model built on ``meta``."""
        self.image_mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.image_std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in 0..1 → (B, tokens, hidden)."""
        return self.model((images - self.image_mean) / self.image_std)


def resize_for_model(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, 3) in 0..1 → (B, 3, size, size): bilinear with antialiasing, as upstream resizes."""
    return F.interpolate(
        images.permute(0, 3, 1, 2), (size, size), mode="bilinear", align_corners=False, antialias=True
    )


class TriplaneTokenizer(nn.Module):
    """Three learned planes of ``channels`` × ``size`` × ``size``, flattened plane-major into tokens."""

    def __init__(self, plane_size: int, channels: int) -> None:
        super().__init__()
        self.plane_size = plane_size
        self.channels = channels
        self.embeddings = nn.Parameter(torch.randn(3, channels, plane_size, plane_size) / math.sqrt(channels))

    def forward(self, batch: int) -> torch.Tensor:
        """(B, channels, 3 · size²)."""
        tokens = self.embeddings.permute(1, 0, 2, 3).reshape(self.channels, -1)
        return tokens.unsqueeze(0).expand(batch, -1, -1)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, channels, 3 · size²) → (B, 3, channels, size, size)."""
        batch = tokens.shape[0]
        planes = tokens.reshape(batch, self.channels, 3, self.plane_size, self.plane_size)
        return planes.permute(0, 2, 1, 3, 4)
