"""The image encoder: DINO ViT-B/16 whose every layer is modulated by the view's camera (adaLN).

Checkpoint prefix ``encoder.``: ``encoder.model.*`` is the ViT with transformers-4.3x names (no pooler),
``encoder.camera_embedder.{0,2}`` the camera MLP (Linear → SiLU → Linear, 16 → hidden → hidden).
"""

from __future__ import annotations

import torch
from torch import nn

from reconstruction_service.triposr.config import ViTConfig
from reconstruction_service.triposr.tokenizers import IMAGENET_MEAN, IMAGENET_STD
from reconstruction_service.triposr.vit import DinoViT

CAMERA_NUMBERS = 16  # 3 × 4 camera-to-world + fx, fy, cx, cy


class CameraModulatedDino(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.model = DinoViT(cfg, pooler=False, modulated=True)
        self.camera_embedder = nn.Sequential(
            nn.Linear(CAMERA_NUMBERS, cfg.hidden_size), nn.SiLU(), nn.Linear(cfg.hidden_size, cfg.hidden_size)
        )
        # The DINO image processor's constants: not in the checkpoint, made here (and again after a
        # meta-device load, by reset_buffers).
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def reset_buffers(self, device: torch.device) -> None:
        self.image_mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.image_std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def forward(self, images: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
        """images (B, V, 3, H, W) in 0..1, cameras (B, V, 16) → tokens (B, V · (1 + patches), hidden),
        view-major: every token of view 0 first. Upstream does not resize: 320² gives 20 × 20 patches and
        the 14 × 14 position table is interpolated DINO's way (see triposr/vit.py)."""
        batch, views = images.shape[:2]
        pixels = (images.flatten(0, 1) - self.image_mean) / self.image_std
        condition = self.camera_embedder(cameras).flatten(0, 1)
        tokens = self.model(pixels.to(condition.dtype), condition)
        return tokens.reshape(batch, views * tokens.shape[1], tokens.shape[2])
