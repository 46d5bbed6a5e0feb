"""A tiny TripoSR in the published on-disk layout, for tests that load it through the production path.

Most weights are random. A few are set so the density field is a ball: the triplane tokens carry
(1, u, v, u², v²) on five channels, which the backbone leaves alone (its output rows for them are zero,
so the stack's residual passes them through); the upsampler turns them into −(u² + v²) at full plane
resolution; and one neuron of the NeRF MLP carries the sum over the three planes, −2|p|², through the
SiLU layers (offset by +20, where SiLU is the identity to 4e-8) to the density output. The density is
25 (TripoSR's default threshold) on a sphere of radius SURFACE_RADIUS, so marching cubes always finds
a closed surface. Colours and the rest of the triplane come from the random weights and the image.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import yaml

from reconstruction_service.triposr.config import parse_config
from reconstruction_service.triposr.model import CONFIG_FILE, WEIGHTS_FILE, build_model

REPO_ID = "stabilityai/TripoSR"
SURFACE_RADIUS = 0.55  # in the field's unit cube (−1..1); 0.55 × 0.87 = 0.48 in TripoSR's units
THRESHOLD = 25.0
_OFFSET = 20.0  # keeps the carried neuron where SiLU(x) = x
_SLOPE = 10.0

TINY_CONFIG = {
    "cond_image_size": 64,
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "image_tokenizer": {
        "pretrained_model_name_or_path": "meshforge/tiny-vit",
        "vit": {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "image_size": 48,
            "patch_size": 16,
        },
    },
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "tokenizer": {"plane_size": 8, "num_channels": 64},
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "backbone": {
        "in_channels": "${tokenizer.num_channels}",
        "num_attention_heads": 4,
        "attention_head_dim": 16,
        "num_layers": 2,
        "cross_attention_dim": 64,
    },
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "post_processor": {"in_channels": 64, "out_channels": 8},
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "decoder": {"in_channels": 24, "n_neurons": 32, "n_hidden_layers": 3, "activation": "silu"},
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
    "renderer": {
        "radius": 0.87,
        "feature_reduction": "concat",
        "density_activation": "exp",
        "density_bias": -1.0,
        "num_samples_per_ray": 16,
    },
}


def build_tiny_triposr(models_dir: Path, seed: int = 0) -> Path:
    """Write ``models_dir/stabilityai/TripoSR/{config.yaml, model.ckpt}``; returns that folder."""
    folder = models_dir / REPO_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(TINY_CONFIG, sort_keys=False))
    torch.manual_seed(seed)
    model = build_model(parse_config(TINY_CONFIG))
    with torch.no_grad():
        shape_density_ball(model)
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    return folder


def shape_density_ball(model: torch.nn.Module) -> None:
    """Set the few weights that make the density field a ball (any model size; see module docstring)."""
    size = model.tokenizer.plane_size
    centres = (2 * torch.arange(size) + 1) / size - 1.0  # grid_sample's cell centres (align_corners=False)
    u = centres.view(1, size).expand(size, size)  # along the width: grid_sample's x
    v = centres.view(size, 1).expand(size, size)
    for plane in range(3):
        for channel, values in enumerate((torch.ones(size, size), u, v, u * u, v * v)):
            model.tokenizer.embeddings[plane, channel] = values
    model.backbone.proj_out.weight[:5] = 0.0
    model.backbone.proj_out.bias[:5] = 0.0

    # Each coarse cell becomes 2 × 2 fine cells whose centres lie ±1/(2·size) from it:
    # −(u + d)² = −u² − 2·u·d − d², linear in the five channels.
    conv = model.post_processor.upsample
    conv.weight[:, 0] = 0.0
    conv.bias[0] = 0.0
    for row in range(2):
        for col in range(2):
            d_v, d_u = (2 * row - 1) / (2 * size), (2 * col - 1) / (2 * size)
            conv.weight[0, 0, row, col] = -(d_u * d_u + d_v * d_v)
            conv.weight[1, 0, row, col] = -2.0 * d_u
            conv.weight[2, 0, row, col] = -2.0 * d_v
            conv.weight[3, 0, row, col] = -1.0
            conv.weight[4, 0, row, col] = -1.0

    linears = [layer for layer in model.decoder.layers if isinstance(layer, torch.nn.Linear)]
    channels = conv.out_channels
    first = linears[0]
    first.weight[0] = 0.0
    first.weight[0, [0, channels, 2 * channels]] = 1.0
    first.bias[0] = _OFFSET
    for layer in linears[1:]:
        layer.weight[:, 0] = 0.0  # nothing else reads the carried neuron (it is ~20: it would saturate)
        layer.weight[0] = 0.0
        layer.bias[0] = 0.0
    for layer in linears[1:-1]:
        layer.weight[0, 0] = 1.0
    last = linears[-1]
    last.weight[0, 0] = _SLOPE
    # density = exp(slope · (sum − offset... ) + bias − 1) = 25 where sum = −2·r²
    density_bias = model.config.renderer.density_bias
    last.bias[0] = -_SLOPE * _OFFSET + math.log(THRESHOLD) - density_bias + _SLOPE * 2 * SURFACE_RADIUS**2
