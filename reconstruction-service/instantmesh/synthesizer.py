"""Triplane features at points, and the four MLP heads that read them (checkpoint ``synthesizer.decoder.``).

Each head is Linear → ReLU → (Linear → ReLU) × 2 → Linear (indices 0, 2, 4, 6), 64 wide:
``net_sdf`` (1), ``net_deformation`` (3), ``net_rgb`` (3) read one point's features (3 planes × C);
``net_weight`` (21 FlexiCubes weights per cube) reads the features of a cube's 8 corners, concatenated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = 64
HIDDEN_LAYERS = 2  # between the first and the last Linear (upstream's num_layers 4)
CUBE_WEIGHTS = 21  # 12 edge β, 8 corner α, 1 split γ
WEIGHT_SCALE = 0.1  # upstream multiplies net_weight's output by this
RGB_MARGIN = 0.001  # MipNeRF's widened sigmoid: sigmoid · (1 + 2m) − m


def _head(width_in: int, width_out: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(width_in, HIDDEN), nn.ReLU()]
    for _ in range(HIDDEN_LAYERS):
        layers += [nn.Linear(HIDDEN, HIDDEN), nn.ReLU()]
    layers.append(nn.Linear(HIDDEN, width_out))
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    def __init__(self, triplane_dim: int) -> None:
        super().__init__()
        point = 3 * triplane_dim
        self.net_sdf = _head(point, 1)
        self.net_rgb = _head(point, 3)
        self.net_deformation = _head(point, 3)
        self.net_weight = _head(8 * point, CUBE_WEIGHTS)


class Synthesizer(nn.Module):
    """Holds ``decoder`` so the names read ``synthesizer.decoder.net_*``; upstream's volume renderer
    (NeRF variant only) has no parameters and is not needed for meshes."""

    def __init__(self, triplane_dim: int) -> None:
        super().__init__()
        self.decoder = Decoder(triplane_dim)

    def sdf(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder.net_sdf(features).squeeze(-1)

    def deformation(self, features: torch.Tensor) -> torch.Tensor:
        """Raw; the caller bounds it (tanh / (4 · grid_res))."""
        return self.decoder.net_deformation(features)

    def cube_weights(self, corner_features: torch.Tensor) -> torch.Tensor:
        """(N, 8, 3C) → (N, 21): β for the 12 edges, α for the 8 corners, γ, before FlexiCubes' squashing."""
        return self.decoder.net_weight(corner_features.flatten(1)) * WEIGHT_SCALE

    def rgb(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder.net_rgb(features)) * (1 + 2 * RGB_MARGIN) - RGB_MARGIN


def sample_planes(planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """planes (3, C, H, W), points (N, 3) in the planes' units (−1..1 spans a plane) → (N, 3C).

    Plane 0 is read at (x, y), plane 1 at (x, z), plane 2 at (z, y): the first coordinate along the
    width (grid_sample's x). Bilinear, zero padding, align_corners=False; features plane by plane.
    Upstream scales points by 2 / box_warp with box_warp 2, i.e. not at all.
    """
    pairs = torch.stack([points[:, [0, 1]], points[:, [0, 2]], points[:, [2, 1]]])  # (3, N, 2)
    sampled = F.grid_sample(
        planes,
        pairs.unsqueeze(1).to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # (3, C, 1, N)
    return sampled.squeeze(2).permute(2, 0, 1).flatten(1)
