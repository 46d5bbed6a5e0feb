"""The NeRF MLP and the field it defines: triplane features at a point → density and colour."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction_service.triposr.config import DecoderConfig, RendererConfig


class NeRFMLP(nn.Module):
    """``n_hidden_layers`` Linear + activation pairs, then a Linear to 4 outputs (density, 3 colour)."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        activation = nn.SiLU if cfg.activation == "silu" else nn.ReLU
        layers: list[nn.Module] = []
        width_in = cfg.in_channels
        for _ in range(cfg.n_hidden_layers):
            layers += [nn.Linear(width_in, cfg.n_neurons, bias=cfg.bias), activation()]
            width_in = cfg.n_neurons
        layers.append(nn.Linear(width_in, 4, bias=cfg.bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


@dataclass(frozen=True)
class FieldSample:
    density: torch.Tensor  # (N,) after the activation: exp(raw + density_bias)
    colour: torch.Tensor  # (N, 3) in 0..1


def sample_triplanes(planes: torch.Tensor, points: torch.Tensor, cfg: RendererConfig) -> torch.Tensor:
    """planes (3, C, H, W), points (N, 3) in world units → features (N, 3C) (or (N, C) for ``mean``).

    Points are scaled from (−radius, radius) to (−1, 1); plane 0 is sampled at (x, y), plane 1 at (x, z),
    plane 2 at (y, z), the first coordinate along the plane's width (grid_sample's x).
    """
    radius = cfg.radius
    unit = (points - (-radius)) / (radius - (-radius)) * 2.0 + (-1.0)
    pairs = torch.stack([unit[:, [0, 1]], unit[:, [0, 2]], unit[:, [1, 2]]], dim=0)  # (3, N, 2)
    sampled = F.grid_sample(planes, pairs.unsqueeze(1), mode="bilinear", align_corners=False)  # (3, C, 1, N)
    sampled = sampled.squeeze(2)
    if cfg.feature_reduction == "mean":
        return sampled.mean(dim=0).transpose(0, 1)
    return sampled.permute(2, 0, 1).reshape(points.shape[0], -1)


def query_field(
    decoder: NeRFMLP, planes: torch.Tensor, points: torch.Tensor, cfg: RendererConfig
) -> FieldSample:
    """Density and colour at ``points`` (N, 3), computed in the planes' dtype."""
    raw = decoder(sample_triplanes(planes, points.to(planes.dtype), cfg))
    # trunc_exp is exp in the forward pass (it only clamps the gradient).
    return FieldSample(density=torch.exp(raw[:, 0] + cfg.density_bias), colour=torch.sigmoid(raw[:, 1:4]))
