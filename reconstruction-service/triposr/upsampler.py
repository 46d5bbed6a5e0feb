"""Triplane upsampler: one stride-2 transposed convolution, shared by the three planes."""

from __future__ import annotations

import torch
from torch import nn


class TriplaneUpsampler(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        """(B, 3, Ci, H, W) → (B, 3, Co, 2H, 2W)."""
        batch = planes.shape[0]
        up = self.upsample(planes.flatten(0, 1))
        return up.view(batch, 3, *up.shape[1:])
