"""DINO ViT-B/16 with transformers-4.35 parameter names and position-embedding interpolation.

Why our own ViT and not ``transformers.ViTModel``: the published checkpoint uses 4.35's names
(``encoder.layer.N.attention.attention.query``...), which transformers 5.x renamed, and 5.x resizes the
position embeddings to an exact ``size=`` while 4.35 (like DINO) uses ``scale_factor=(n + 0.1) / N``.
The two give different triplanes (~1e-3), so a translation layer would load the weights but not
reproduce the model. This module is the forward pass of 4.35's ViTModel, plus one option InstantMesh
needs: its encoder is the same DINO ViT with camera modulation (``modulated=True``: an
``adaLN_modulation`` per layer shifts and scales both LayerNorm outputs) and without the pooler.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction_service.triposr.config import ViTConfig


class PatchEmbeddings(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(
            cfg.num_channels, cfg.hidden_size, kernel_size=cfg.patch_size, stride=cfg.patch_size
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projection(pixels).flatten(2).transpose(1, 2)


class Embeddings(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.patch_size = cfg.patch_size
        grid = cfg.image_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.hidden_size))
        self.position_embeddings = nn.Parameter(torch.randn(1, grid * grid + 1, cfg.hidden_size))
        self.patch_embeddings = PatchEmbeddings(cfg)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        height, width = pixels.shape[-2:]
        patches = self.patch_embeddings(pixels)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        tokens = torch.cat([cls, patches], dim=1)
        return tokens + self.interpolated_positions(tokens.shape[1] - 1, height, width)

    def interpolated_positions(self, num_patches: int, height: int, width: int) -> torch.Tensor:
        """4.35 semantics: bicubic, align_corners=False, scale_factor ((H/p) + 0.1) / N."""
        positions = self.position_embeddings
        known = positions.shape[1] - 1
        if num_patches == known and height == width:
            return positions
        side = int(math.sqrt(known))
        dim = positions.shape[-1]
        rows, cols = height // self.patch_size + 0.1, width // self.patch_size + 0.1
        grid = positions[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid,
            scale_factor=(rows / math.sqrt(known), cols / math.sqrt(known)),
            mode="bicubic",
            align_corners=False,
        )
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat([positions[:, :1], grid], dim=1)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.qkv_bias)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.qkv_bias)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=cfg.qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)))
        return out.transpose(1, 2).reshape(batch, length, dim)


class AttentionOutput(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.output = AttentionOutput(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(x))


class Dense(nn.Module):
    """A holder for one ``dense`` Linear, so the names read ``intermediate.dense`` / ``output.dense``."""

    def __init__(self, size_in: int, size_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(size_in, size_out)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: one shift and scale per image, broadcast over its tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Layer(nn.Module):
    def __init__(self, cfg: ViTConfig, modulated: bool = False) -> None:
        super().__init__()
        self.attention = Attention(cfg)
        self.intermediate = Dense(cfg.hidden_size, cfg.intermediate_size)
        self.output = Dense(cfg.intermediate_size, cfg.hidden_size)
        self.layernorm_before = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        if modulated:
            # SiLU → Linear(hidden, 4·hidden): the checkpoint names the Linear ``adaLN_modulation.1``.
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.hidden_size, 4 * cfg.hidden_size))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is None:
            x = x + self.attention(self.layernorm_before(x))
            hidden = F.gelu(self.intermediate.dense(self.layernorm_after(x)))
            return x + self.output.dense(hidden)
        shift_attn, scale_attn, shift_mlp, scale_mlp = self.adaLN_modulation(condition).chunk(4, dim=1)
        x = x + self.attention(_modulate(self.layernorm_before(x), shift_attn, scale_attn))
        hidden = F.gelu(self.intermediate.dense(_modulate(self.layernorm_after(x), shift_mlp, scale_mlp)))
        return x + self.output.dense(hidden)


class Encoder(nn.Module):
    def __init__(self, cfg: ViTConfig, modulated: bool = False) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg, modulated) for _ in range(cfg.num_hidden_layers))


class DinoViT(nn.Module):
    """``ViTModel(config)`` of transformers 4.35 (no mask token). ``pooler``: TripoSR's checkpoint holds
    the pooler's weights (never read), InstantMesh's has none. ``modulated``: InstantMesh's adaLN layers,
    which then need a ``condition`` (B, hidden) per image."""

    def __init__(self, cfg: ViTConfig, *, pooler: bool = True, modulated: bool = False) -> None:
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg, modulated)
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        if pooler:
            self.pooler = Dense(cfg.hidden_size, cfg.hidden_size)

    def forward(self, pixels: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised pixels (B, 3, H, W) → last_hidden_state (B, 1 + patches, hidden), CLS first."""
        x = self.embeddings(pixels)
        for layer in self.encoder.layer:
            x = layer(x, condition)
        return self.layernorm(x)
