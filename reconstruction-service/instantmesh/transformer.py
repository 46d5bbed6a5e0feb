"""The triplane transformer: learned triplane tokens attend to the image tokens, then a deconvolution.

Parameter names are those of ``torch.nn.MultiheadAttention`` without bias (upstream builds its blocks
from it): cross-attention has separate ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` (the keys'
width is the encoder's, not the transformer's), self-attention one packed ``in_proj_weight``. The maths
is the same (softmax(q·kᵀ/√d)·v per head, then ``out_proj``), done by ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction_service.instantmesh.config import LrmConfig

BLOCK_NORM_EPS = 1e-5  # upstream passes eps to its blocks but never uses it: LayerNorm's default
FINAL_NORM_EPS = 1e-6
MLP_RATIO = 4


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, Lq, D), (B, Lk, D) ×2 → (B, Lq, D)."""

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (heads, t.shape[-1] // heads)).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).flatten(2)


class CrossAttention(nn.Module):
    """Like ``nn.MultiheadAttention``, the projections are packed into one ``in_proj_weight`` when the
    context is as wide as the queries, and separate otherwise (instant-mesh-large: 768 ≠ 1024)."""

    def __init__(self, dim: int, context_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.packed = context_dim == dim
        if self.packed:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
            nn.init.xavier_uniform_(self.in_proj_weight)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(dim, dim))
            self.k_proj_weight = nn.Parameter(torch.empty(dim, context_dim))
            self.v_proj_weight = nn.Parameter(torch.empty(dim, context_dim))
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                nn.init.xavier_uniform_(weight)
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.packed:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        q, k, v = F.linear(x, w_q), F.linear(context, w_k), F.linear(context, w_v)
        return self.out_proj(_attend(q, k, v, self.heads))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight).chunk(3, dim=-1)
        return self.out_proj(_attend(q, k, v, self.heads))


class Block(nn.Module):
    """Cross-attention to the image, then self-attention, then the MLP; pre-norm, residual each."""

    def __init__(self, dim: int, context_dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.cross_attn = CrossAttention(dim, context_dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        self.self_attn = SelfAttention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=BLOCK_NORM_EPS)
        # Linear, GELU, Dropout, Linear, Dropout upstream: the placeholders keep the Linears at 0 and 3.
        hidden = dim * MLP_RATIO
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(self.norm1(x), context)
        x = x + self.self_attn(self.norm2(x))
        return x + self.mlp(self.norm3(x))


class TriplaneTransformer(nn.Module):
    def __init__(self, cfg: LrmConfig) -> None:
        super().__init__()
        self.low_res = cfg.triplane_low_res
        dim = cfg.transformer_dim
        tokens = 3 * cfg.triplane_low_res**2
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) / math.sqrt(dim))
        self.layers = nn.ModuleList(
            Block(dim, cfg.encoder_feat_dim, cfg.transformer_heads) for _ in range(cfg.transformer_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=FINAL_NORM_EPS)
        self.deconv = nn.ConvTranspose2d(dim, cfg.triplane_dim, kernel_size=2, stride=2)

    def tokens(self, context: torch.Tensor) -> torch.Tensor:
        """Image tokens (B, L, D_enc) → normalised triplane tokens (B, 3 · low², D), plane-major."""
        x = self.pos_embed.expand(context.shape[0], -1, -1)
        for layer in self.layers:
            x = layer(x, context)
        return self.norm(x)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """→ triplanes (B, 3, triplane_dim, 2 · low, 2 · low); token (p, h, w) is plane p's row h,
        column w."""
        batch, res = context.shape[0], self.low_res
        x = self.tokens(context).reshape(batch * 3, res, res, -1).permute(0, 3, 1, 2)
        planes = self.deconv(x)
        return planes.reshape(batch, 3, *planes.shape[1:])
