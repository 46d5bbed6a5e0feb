"""A tiny randomly initialised Zero123++ v1.2 folder in the published diffusers layout, for tests on CPU.

The layout is ``sudo-ai/zero123plus-v1.2``'s: ``model_index.json`` naming upstream's pipeline class, the
eight component folders (vae, unet, scheduler, text_encoder, tokenizer, vision_encoder,
feature_extractor_clip, feature_extractor_vae) and 77 ``ramping_coefficients``. Every component is the
class the published folder uses, tiny; the image processors and the scheduler keep v1.2's settings
(320² VAE input, mean/std 0.5; Euler-ancestral, linear betas 0.00085–0.012, v-prediction), except that
the CLIP input is 64² for the tiny vision tower. The weights are drawn by ``_fill_deterministic``, not
by the libraries' initialisers, so they stay the same across library versions. The views are noise,
but shapes, seeds, the reference attention and the conditioning are real, and upstream's own pipeline
loads the same folder (docs/instantmesh.md, conformance).

``build_finetuned_unet`` writes InstantMesh's fine-tuned UNet file (``diffusion_pytorch_model.bin``,
a torch pickle of the UNet's state dict) where ``TencentARC/InstantMesh`` is looked up.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from tests.tiny_flux import train_clip_tokenizer

REPO_ID = "sudo-ai/zero123plus-v1.2"
INSTANTMESH_REPO_ID = "TencentARC/InstantMesh"
HIDDEN = 32  # text width = image-embedding width = UNet cross-attention width, as in v1.2 (1024 there)
PROMPT_TOKENS = 77
CLIP_SIZE = 64
VAE_SIZE = 320
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

_built: dict[str, Path] = {}


def ramping_coefficients() -> list[float]:
    """77 per-token weights: 0 for the start token, then rising (the shape, not v1.2's numbers)."""
    return [0.0] + [round(0.2 + 0.8 * i / (PROMPT_TOKENS - 2), 6) for i in range(PROMPT_TOKENS - 1)]


def build_tiny_zero123plus(models_dir: Path) -> Path:
    """Put the tiny folder at ``models_dir/sudo-ai/zero123plus-v1.2/``; returns it."""
    source = _source()
    target = models_dir / REPO_ID
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def build_finetuned_unet(models_dir: Path, *, seed: int = 1) -> Path:
    """InstantMesh's fine-tuned UNet file for the tiny UNet: its weights, perturbed by N(0, 0.02)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(_source() / "unet")
    generator = torch.Generator().manual_seed(seed)
    state = {
        key: value + 0.02 * torch.randn(value.shape, generator=generator)
        for key, value in unet.state_dict().items()
    }
    path = models_dir / INSTANTMESH_REPO_ID / "diffusion_pytorch_model.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _source() -> Path:
    """The tiny folder, built once per session (a few seconds) and copied where tests ask for it."""
    source = _built.get("pipeline")
    if source is None:
        source = Path(tempfile.mkdtemp(prefix="tiny-zero123plus-")) / "pipeline"
        save_pipeline(source)
        _built["pipeline"] = source
    return source


def save_pipeline(folder: Path) -> None:
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    folder.mkdir(parents=True)
    _write_tokenizer(folder / "tokenizer", train_clip_tokenizer())
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=HIDDEN,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=PROMPT_TOKENS,
            projection_dim=HIDDEN,
            hidden_act="gelu",  # v1.2's text tower (OpenCLIP ViT-H) uses gelu
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    vision_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=HIDDEN,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=CLIP_SIZE,
            patch_size=16,
            projection_dim=HIDDEN,
            hidden_act="gelu",
        )
    )
    # SD2's UNet, tiny: linear projections, cross-attention on the text width. Self-attention (and so
    # reference attention) only at the lowest resolution (30×20 for the 960×640 grid), in the down,
    # middle and up blocks, so that a CPU step takes a fraction of a second.
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        block_out_channels=(8, 16, 32),
        layers_per_block=1,
        cross_attention_dim=HIDDEN,
        attention_head_dim=(2, 2, 4),
        norm_num_groups=8,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # 8× downsampling, as v1.2's VAE
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 4, 4),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        scaling_factor=0.18215,
    )
    for seed, model in enumerate((text_encoder, vision_encoder, unet, vae)):
        _fill_deterministic(model, seed)
    scheduler = EulerAncestralDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="linear",
        prediction_type="v_prediction",
        steps_offset=1,
        timestep_spacing="linspace",
    )
    vae.save_pretrained(folder / "vae")
    unet.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    text_encoder.save_pretrained(folder / "text_encoder")
    _write_prefixed_weights(folder / "text_encoder", text_encoder, "text_model.")
    vision_encoder.save_pretrained(folder / "vision_encoder")
    _write_processor(folder / "feature_extractor_clip", CLIP_SIZE, CLIP_MEAN, CLIP_STD)
    _write_processor(folder / "feature_extractor_vae", VAE_SIZE, [0.5] * 3, [0.5] * 3)
    (folder / "model_index.json").write_text(json.dumps(model_index(), indent=2))


def model_index() -> dict[str, object]:
    return {
        "_class_name": "Zero123PlusPipeline",
        "_diffusers_version": "0.20.2",
        "feature_extractor_clip": ["transformers", "CLIPImageProcessor"],
        "feature_extractor_vae": ["transformers", "CLIPImageProcessor"],
        "ramping_coefficients": ramping_coefficients(),
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vision_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    }


def _write_prefixed_weights(folder: Path, model: torch.nn.Module, prefix: str) -> None:
    """The published CLIP text encoder's tensor names (``text_model.…``, transformers 4.x), which
    transformers 5 drops when saving; both major versions load these names."""
    from safetensors.torch import save_file

    state = {
        (key if key.startswith(prefix) else prefix + key): value.contiguous()
        for key, value in model.state_dict().items()
        if not key.endswith("position_ids")
    }
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _write_tokenizer(folder: Path, tokenizer: object) -> None:
    """vocab.json + merges.txt + tokenizer_config.json, the slow-tokenizer files the published folder
    has (transformers 5 would write only tokenizer.json); the padding token is v1.2's "!"."""
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]  # type: ignore[attr-defined]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "add_prefix_space": False,
        "bos_token": "<|startoftext|>",
        "do_lower_case": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": PROMPT_TOKENS,
        "pad_token": "!",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "!",
        "unk_token": "<|endoftext|>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def _write_processor(folder: Path, size: int, mean: list[float], std: list[float]) -> None:
    """A CLIPImageProcessor config as the published folders have it (written by hand: transformers 5
    would record its PIL class's own name, which transformers 4.x does not know)."""
    folder.mkdir(parents=True)
    config = {
        "crop_size": {"height": size, "width": size},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": mean,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": std,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": size},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2))


def _fill_deterministic(model: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn here, by name order, from our own generator: the tiny weights (and so the
    conformance arrays in tests/data/zero123plus/) do not depend on a library's initialisers. Matrices
    and kernels are N(0, 1/fan_in), norm scales 1 + N(0, 0.05²), biases and other vectors N(0, 0.05²)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim >= 2:
                fan_in = parameter[0].numel()
                parameter.copy_(noise / fan_in**0.5)
            elif name.endswith("weight"):
                parameter.copy_(1.0 + 0.05 * noise)
            else:
                parameter.copy_(0.05 * noise)


CONFORMANCE_SEED = 1234
CONFORMANCE_STEPS = 3


def conformance_image() -> Any:
    """The condition image of the conformance run (tests/data/zero123plus/README.md): a 300×280 RGBA
    with colour gradients and an opaque disc with a soft edge, from a formula (no file, no PIL drawing)."""
    import numpy as np
    from PIL import Image

    h, w = 300, 280
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = np.hypot((x - 140) / 110, (y - 150) / 120)
    rgb = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 17 + y / 23)], -1)
    alpha = np.clip((1.0 - r) * 6.0, 0, 1)
    rgba = np.concatenate([rgb, alpha[..., None]], -1)
    return Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA")


def weights_fingerprint(folder: Path | str, unet_file: Path | str) -> Any:
    """Per weights file, the sum and the sum of squares of all its numbers (float64): which tiny weights
    the conformance arrays were made from, so a change to this builder fails with its own message."""
    import numpy as np
    from safetensors.numpy import load_file

    files = [
        sorted((Path(folder) / part).glob("*.safetensors"))[0]
        for part in ("text_encoder", "vision_encoder", "unet", "vae")
    ]
    arrays = [list(load_file(str(path)).values()) for path in files]
    finetuned = torch.load(unet_file, map_location="cpu", weights_only=True)
    arrays.append([tensor.double().numpy() for tensor in finetuned.values()])
    sums = []
    for tensors in arrays:
        sums.append(sum(float(t.astype(np.float64).sum()) for t in tensors))
        sums.append(sum(float((t.astype(np.float64) ** 2).sum()) for t in tensors))
    return np.array(sums, dtype=np.float64)
