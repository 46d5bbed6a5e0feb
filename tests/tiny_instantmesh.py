"""A tiny InstantMesh reconstruction model in the published on-disk layout, for tests and conformance.

``build_tiny_instantmesh(models_dir)`` writes ``models/TencentARC/InstantMesh/instant_mesh_large.ckpt``
(a Lightning-style checkpoint: tensors under ``state_dict`` with the ``lrm_generator.`` prefix, next to
entries upstream's run.py ignores) and ``instant-mesh-large.yaml`` (upstream's config format, with the
tiny ViT given in ``params.encoder_vit``).

The weights come from NumPy's PCG64 stream, tensor by tensor in name order, not from torch's initialisers:
the same file on every machine and torch version, so the reference arrays made once from upstream
InstantMesh with this very file (tests/data/instantmesh/, docs/instantmesh.md) stay valid. Every tensor
is random, the adaLN modulation included (upstream initialises it to zero, which would hide the cameras).

``ball=True`` sets a few weights so that the SDF is a ball instead (``shape_sdf_ball``), for tests that
need a clean closed surface; the rest stays random, so the views and cameras still reach the colours.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from reconstruction_service.instantmesh.config import parse_config
from reconstruction_service.instantmesh.model import CHECKPOINT_PREFIX, CONFIG_FILE, WEIGHTS_FILE, build_model

REPO_ID = "TencentARC/InstantMesh"
VIEW_SIZE = 64  # 4 × 4 patches: the 3 × 3 position table is interpolated DINO's way
SEED = 16

TINY_CONFIG: dict[str, Any] = {
    "model_config": {
        "target": "src.models.lrm_mesh.InstantMesh",
        "params": {
            "encoder_feat_dim": 32,
            "encoder_freeze": False,
            "encoder_model_name": "meshforge/tiny-dino",
            "encoder_vit": {
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 64,
                "image_size": 48,
                "patch_size": 16,
            },
            # Wider than the encoder, as in instant-mesh-large: cross-attention keeps separate q/k/v.
            "transformer_dim": 48,
            "transformer_layers": 2,
            "transformer_heads": 4,
            "triplane_low_res": 4,
            "triplane_high_res": 8,
            "triplane_dim": 8,
            "rendering_samples_per_ray": 16,
            "grid_res": 24,
            "grid_scale": 2.1,
        },
    },
}


def tiny_state(seed: int = SEED) -> dict[str, torch.Tensor]:
    """Every tensor of the tiny model, in name order from one PCG64 stream.

    Matrices N(0, 1/fan_in); LayerNorm scales 1 + N(0, 0.1²); biases and embeddings N(0, 0.1²), with
    the SDF head's last bias at −0.1, where the random field crosses zero well inside the grid."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, tensor in sorted(build_model(parse_config(TINY_CONFIG), "meta").state_dict().items()):
        shape = tuple(tensor.shape)
        values = rng.standard_normal(shape)
        if len(shape) >= 2 and not name.endswith(("pos_embed", "position_embeddings", "cls_token")):
            values /= np.sqrt(np.prod(shape[1:]) if "deconv" not in name else shape[0])
        elif "norm" in name and name.endswith("weight"):
            values = 1.0 + 0.1 * values
        else:
            values *= 0.1
        state[name] = torch.from_numpy(values.astype(np.float32))
    state["synthesizer.decoder.net_sdf.6.bias"] = torch.tensor([-0.1])
    return state


def tiny_inputs(seed: int = SEED) -> np.ndarray:
    """(6, 3, VIEW_SIZE, VIEW_SIZE) float32 in 0..1: the views both sides of the comparison read."""
    return np.random.default_rng(seed + 1).random((6, 3, VIEW_SIZE, VIEW_SIZE)).astype(np.float32)


def write_checkpoint(path: Path, state: dict[str, torch.Tensor]) -> None:
    """The published layout: model tensors prefixed under ``state_dict``, plus what run.py discards."""
    prefixed = {CHECKPOINT_PREFIX + name: tensor for name, tensor in state.items()}
    prefixed["lpips.net.slice1.0.weight"] = torch.zeros(2, 3, 1, 1)  # a training-only network
    torch.save({"epoch": 0, "global_step": 0, "state_dict": prefixed}, path)


def build_tiny_instantmesh(models_dir: Path, seed: int = SEED, *, ball: bool = False) -> Path:
    """Write ``models_dir/TencentARC/InstantMesh/{instant_mesh_large.ckpt, instant-mesh-large.yaml}``."""
    folder = models_dir / REPO_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(TINY_CONFIG, sort_keys=False))
    state = tiny_state(seed)
    if ball:
        shape_sdf_ball(state)
    write_checkpoint(folder / WEIGHTS_FILE, state)
    return folder


BALL_RADIUS = 0.6  # in the grid's units (the grid spans ±1.05)
_CARRIED = 7  # residual channels 0..6 carry the ball: A · (1, u, v, u², v², c1, c2)
_AMPLITUDE = 1000.0  # dominates the final LayerNorm's mean and variance
_SUM_SQUARES = 20.0  # every carried token has Σ s = 0 and Σ s² = this
_FAR = 4.0  # plane feature u² + v² − _FAR: zero padding (outside the plane) reads as far outside
_OFFSET = 20.0  # keeps the SDF head's carried neuron where ReLU is the identity


def _carried_pattern(u: float, v: float) -> list[float]:
    """(1, u, v, u², v²) and two channels that make the sum 0 and the sum of squares _SUM_SQUARES."""
    known = [1.0, u, v, u * u, v * v]
    mean_pair = -sum(known)
    spread = math.sqrt(2 * (_SUM_SQUARES - sum(x * x for x in known)) - mean_pair**2)
    return [*known, (mean_pair + spread) / 2, (mean_pair - spread) / 2]


def shape_sdf_ball(state: dict[str, torch.Tensor]) -> None:
    """Make the SDF |p|² − BALL_RADIUS² (any model size with transformer_dim > 7).

    The learned tokens carry a fixed pattern on 7 residual channels that no block writes to (their rows
    of every output projection are zero), at an amplitude that makes the final LayerNorm's mean and
    variance the same for every token, so the norm leaves them a fixed linear function of (u, v). The
    deconvolution turns them into u² + v² − 4 at every fine cell centre, on output channel 0 of each plane;
    the SDF head adds the three planes (2|p|² − 12), through its ReLUs offset into the linear range.
    The other channels are rescaled to their usual size, so the image and cameras still reach the colours.
    """
    tokens = state["transformer.pos_embed"]  # (1, 3 · L², D)
    dim, low = tokens.shape[2], math.isqrt(tokens.shape[1] // 3)
    centres = [(2 * i + 1) / low - 1.0 for i in range(low)]
    for plane in range(3):
        for row in range(low):
            for col in range(low):
                pattern = _carried_pattern(centres[col], centres[row])  # u along the width
                tokens[0, (plane * low + row) * low + col, :_CARRIED] = _AMPLITUDE * torch.tensor(pattern)
    for name, tensor in state.items():
        if name.endswith(
            ("cross_attn.out_proj.weight", "self_attn.out_proj.weight", "mlp.3.weight", "mlp.3.bias")
        ):
            tensor[:_CARRIED] = 0.0
    state["transformer.norm.weight"][:_CARRIED] = 1.0
    state["transformer.norm.bias"][:_CARRIED] = 0.0
    gain = math.sqrt(dim / _SUM_SQUARES)  # the LayerNorm's output is gain · pattern

    deconv, bias = state["transformer.deconv.weight"], state["transformer.deconv.bias"]  # (D, C, 2, 2)
    deconv[_CARRIED:, 1:] *= _AMPLITUDE / gain  # the random channels, back to their usual size
    deconv[:, 0] = 0.0
    for ki in range(2):
        for kj in range(2):
            d_v, d_u = (2 * ki - 1) / (2 * low), (2 * kj - 1) / (2 * low)  # fine centres: ± ¼ coarse cell
            # (u + d_u)² + (v + d_v)², linear in the carried (1, u, v, u², v²).
            coefficients = [d_u * d_u + d_v * d_v, 2 * d_u, 2 * d_v, 1.0, 1.0]
            deconv[:5, 0, ki, kj] = torch.tensor(coefficients) / gain
    bias[0] = -_FAR

    channels = deconv.shape[1]
    first = state["synthesizer.decoder.net_sdf.0.weight"]
    first[0] = 0.0
    first[0, [0, channels, 2 * channels]] = 0.5
    state["synthesizer.decoder.net_sdf.0.bias"][0] = _OFFSET
    for index in (2, 4):
        weight = state[f"synthesizer.decoder.net_sdf.{index}.weight"]
        weight[:, 0] = 0.0  # nothing else reads the carried neuron
        weight[0] = 0.0
        weight[0, 0] = 1.0
        state[f"synthesizer.decoder.net_sdf.{index}.bias"][0] = 0.0
    last = state["synthesizer.decoder.net_sdf.6.weight"]
    last[0] = 0.0
    last[0, 0] = 1.0
    # ½ Σ (u² + v² − 4) + offset − offset + 6 − r² = |p|² − r²
    state["synthesizer.decoder.net_sdf.6.bias"][0] = -_OFFSET + 3 * _FAR / 2 - BALL_RADIUS**2
