"""The analytic FLOP count of the FLUX transformer (benchmarks/flux.py), checked against torch's counter."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.flux import (
    FLUX1_TRANSFORMER,
    FLUX_VAE,
    TransformerShape,
    backend_for,
    image_tokens,
    random_pipeline,
    transformer_flops,
)
from flux_service.backends.base import ImageJob, RenderOptions

SMALL = {
    "patch_size": 1,
    "in_channels": 16,
    "num_layers": 2,
    "num_single_layers": 3,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 24,
    "pooled_projection_dim": 20,
    "axes_dims_rope": (4, 4, 8),
}


def measured_flops(config: dict, image: int, text: int) -> int:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    model = FluxTransformer2DModel(**config).eval()
    inputs = {
        "hidden_states": torch.randn(1, image, config["in_channels"]),
        "encoder_hidden_states": torch.randn(1, text, config["joint_attention_dim"]),
        "pooled_projections": torch.randn(1, config["pooled_projection_dim"]),
        "timestep": torch.tensor([0.5]),
        "img_ids": torch.zeros(image, 3),
        "txt_ids": torch.zeros(text, 3),
    }
    if config.get("guidance_embeds"):
        inputs["guidance"] = torch.tensor([3.5])
    # The math attention kernel is made of matrix products the counter sees (the fused CPU one is not).
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(**inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("guidance_embeds", [False, True])
@pytest.mark.parametrize(("image", "text"), [(16, 8), (64, 32)])
def test_the_count_equals_torch_flop_counter_on_a_small_flux_transformer(
    guidance_embeds: bool, image: int, text: int
) -> None:
    config = {**SMALL, "guidance_embeds": guidance_embeds}
    counted = transformer_flops(TransformerShape.from_config(config), image, text)
    assert counted == measured_flops(config, image, text)


def test_flux1_at_1024_squared_is_about_70_tflop_per_step() -> None:
    shape = TransformerShape.from_config(FLUX1_TRANSFORMER)
    n, d = image_tokens(1024, 1024) + 256, 3072
    assert image_tokens(1024, 1024) == 4096
    blocks_only = 57 * (24 * n * d * d + 4 * n * n * d)  # 19 double + 38 single blocks, the closed form
    counted = transformer_flops(shape, image_tokens(1024, 1024), 256)
    assert blocks_only < counted < 1.01 * blocks_only
    assert 69e12 < counted < 71e12


def test_the_gpu_benchmark_path_draws_through_the_production_backend_on_small_configs() -> None:
    t5 = {"vocab_size": 300, "d_model": 24, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 3}
    clip = {"vocab_size": 400, "hidden_size": 20, "intermediate_size": 32, "num_hidden_layers": 1}
    clip |= {"num_attention_heads": 2, "max_position_embeddings": 77, "projection_dim": 20}
    vae = {**FLUX_VAE, "block_out_channels": (8,) * 4, "layers_per_block": 1, "latent_channels": 4}
    vae["norm_num_groups"] = 4
    pipeline = random_pipeline(SMALL, t5, clip, vae, torch.device("cpu"), torch.float32)
    backend = backend_for(pipeline, torch.device("cpu"), torch.float32, max_batch=2)
    rendered = backend.generate_batch([ImageJob("a red cube", 1)] * 3, RenderOptions(32, 32, steps=1))
    assert [image.size for image in rendered.images] == [(32, 32)] * 3
    assert rendered.pipeline_calls == 2
