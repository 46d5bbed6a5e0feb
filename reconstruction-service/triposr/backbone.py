"""The 1D transformer that turns triplane tokens into triplane features, attending to the image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction_service.triposr.config import BackboneConfig


class Attention(nn.Module):
    """Multi-head attention; q/k/v without bias, output with bias (names as in the checkpoint)."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int | None = None) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch = x.shape[0]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.to_q(x)), heads(self.to_k(context)), heads(self.to_v(context))
        )
        return self.to_out[0](out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[3]))


class GEGLU(nn.Module):
    """C → 2·inner, then value · gelu(gate) with the value as the first half."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        # Index 1 is upstream's dropout: kept as a placeholder so the output layer is ``net.2``.
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.net:
            x = module(x)
        return x


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer1D(nn.Module):
    """GroupNorm → proj_in → blocks → proj_out, with a residual around the whole stack."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        inner = cfg.num_attention_heads * cfg.attention_head_dim
        self.norm = nn.GroupNorm(cfg.norm_num_groups, cfg.in_channels, eps=1e-6)
        self.proj_in = nn.Linear(cfg.in_channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, cfg.num_attention_heads, cfg.attention_head_dim, cfg.cross_attention_dim)
            for _ in range(cfg.num_layers)
        )
        self.proj_out = nn.Linear(inner, cfg.in_channels)

    def forward(self, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """tokens (B, C, N), context (B, M, D) → (B, C, N)."""
        x = self.proj_in(self.norm(tokens).transpose(1, 2))
        for block in self.transformer_blocks:
            x = block(x, context)
        return self.proj_out(x).transpose(1, 2) + tokens
