"""The published ``config.yaml``, read without OmegaConf into typed, frozen settings.

The file names upstream's classes (``tsr.models...``) and resolves ``${a.b}`` references; we check the
class names against the ones we re-implement, so a config for a different architecture fails at start-up
instead of loading into the wrong modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshforge.errors import BackendError

EXPECTED_CLASSES = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}
_REFERENCE = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


@dataclass(frozen=True)
class ViTConfig:
    """A transformers-4.35 ``ViTConfig``; the defaults are ``facebook/dino-vitb16``'s config.json."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True


# The published config names the ViT by its hub id; the weights come from model.ckpt, so only the
# architecture is needed, and it is fixed here instead of fetched.
KNOWN_VITS = {"facebook/dino-vitb16": ViTConfig()}


@dataclass(frozen=True)
class BackboneConfig:
    in_channels: int
    num_attention_heads: int
    attention_head_dim: int
    num_layers: int
    cross_attention_dim: int
    norm_num_groups: int = 32


@dataclass(frozen=True)
class DecoderConfig:
    in_channels: int
    n_neurons: int
    n_hidden_layers: int
    activation: str = "relu"
    bias: bool = True


@dataclass(frozen=True)
class RendererConfig:
    radius: float
    feature_reduction: str = "concat"
    density_activation: str = "trunc_exp"
    density_bias: float = -1.0
    color_activation: str = "sigmoid"


@dataclass(frozen=True)
class TriposrConfig:
    cond_image_size: int
    vit: ViTConfig
    plane_size: int
    plane_channels: int
    backbone: BackboneConfig
    upsample_in_channels: int
    upsample_out_channels: int
    decoder: DecoderConfig
    renderer: RendererConfig


def load_config(path: Path) -> TriposrConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BackendError(f"TripoSR config {path} could not be read: {exc}") from None
    if not isinstance(raw, dict):
        raise BackendError(f"TripoSR config {path} is not a mapping")
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "config") -> TriposrConfig:
    cfg = _resolve(raw, raw, source)
    for key, expected in EXPECTED_CLASSES.items():
        if cfg.get(key, expected) != expected:
            raise BackendError(f'{source}: {key} is "{cfg[key]}", but only {expected} is implemented')
    try:
        image = dict(cfg["image_tokenizer"])
        tokenizer, post, renderer = cfg["tokenizer"], cfg["post_processor"], cfg["renderer"]
        decoder = cfg["decoder"]
        backbone = cfg["backbone"]
        if backbone.get("activation_fn", "geglu") != "geglu" or backbone.get("attention_bias", False):
            raise BackendError(f"{source}: only the GEGLU backbone without attention bias is implemented")
        if decoder.get("activation", "relu") not in ("relu", "silu"):
            raise BackendError(f'{source}: decoder activation "{decoder["activation"]}" is not implemented')
        if renderer.get("density_activation", "trunc_exp") not in ("exp", "trunc_exp"):
            raise BackendError(f"{source}: density activation must be exp or trunc_exp")
        if renderer.get("color_activation", "sigmoid") != "sigmoid":
            raise BackendError(f"{source}: colour activation must be sigmoid")
        if renderer.get("feature_reduction", "concat") not in ("concat", "mean"):
            raise BackendError(f"{source}: feature_reduction must be concat or mean")
        return TriposrConfig(
            cond_image_size=int(cfg["cond_image_size"]),
            vit=_vit(image, source),
            plane_size=int(tokenizer["plane_size"]),
            plane_channels=int(tokenizer["num_channels"]),
            backbone=BackboneConfig(
                in_channels=int(backbone["in_channels"]),
                num_attention_heads=int(backbone["num_attention_heads"]),
                attention_head_dim=int(backbone["attention_head_dim"]),
                num_layers=int(backbone["num_layers"]),
                cross_attention_dim=int(backbone["cross_attention_dim"]),
                norm_num_groups=int(backbone.get("norm_num_groups", 32)),
            ),
            upsample_in_channels=int(post["in_channels"]),
            upsample_out_channels=int(post["out_channels"]),
            decoder=DecoderConfig(
                in_channels=int(decoder["in_channels"]),
                n_neurons=int(decoder["n_neurons"]),
                n_hidden_layers=int(decoder["n_hidden_layers"]),
                activation=str(decoder.get("activation", "relu")),
                bias=bool(decoder.get("bias", True)),
            ),
            renderer=RendererConfig(
                radius=float(renderer["radius"]),
                feature_reduction=str(renderer.get("feature_reduction", "concat")),
                density_activation=str(renderer.get("density_activation", "trunc_exp")),
                density_bias=float(renderer.get("density_bias", -1.0)),
                color_activation=str(renderer.get("color_activation", "sigmoid")),
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(f"{source}: incomplete TripoSR config ({type(exc).__name__}: {exc})") from None


def _vit(image: dict[str, Any], source: str) -> ViTConfig:
    """The published file names a known hub id; a ``vit`` mapping (our extension, used by the tiny
    test model) overrides fields of it."""
    name = image.get("pretrained_model_name_or_path", "facebook/dino-vitb16")
    overrides = image.get("vit")
    if name not in KNOWN_VITS and not overrides:
        raise BackendError(
            f'{source}: image tokenizer "{name}" is unknown: use one of {", ".join(KNOWN_VITS)} '
            "or give its architecture in image_tokenizer.vit"
        )
    base = KNOWN_VITS.get(name, ViTConfig())
    return ViTConfig(**{**base.__dict__, **(overrides or {})})


def _resolve(node: Any, root: dict[str, Any], source: str) -> Any:
    """Replace whole-value ``${a.b}`` references (OmegaConf interpolation) by the referenced value."""
    if isinstance(node, dict):
        return {key: _resolve(value, root, source) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, root, source) for value in node]
    if isinstance(node, str) and (match := _REFERENCE.match(node)):
        value: Any = root
        for part in match.group(1).split("."):
            if not isinstance(value, dict) or part not in value:
                raise BackendError(f"{source}: reference {node} points at nothing")
            value = value[part]
        return _resolve(value, root, source)
    return node
