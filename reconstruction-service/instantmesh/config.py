"""The InstantMesh reconstruction model's settings: upstream's ``configs/instant-mesh-large.yaml``, typed.

The published checkpoint ships without a config (upstream keeps the yaml in its repository), so the
``instant-mesh-large`` numbers are built in. A folder may hold a yaml in upstream's format next to the
checkpoint (``model_config.target`` + ``model_config.params``); the tiny test models use that, with one
extension of ours: ``params.encoder_vit`` gives the ViT's architecture in place of the hub id's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from meshforge.errors import BackendError
from reconstruction_service.triposr.config import KNOWN_VITS, ViTConfig

EXPECTED_TARGET = "src.models.lrm_mesh.InstantMesh"


@dataclass(frozen=True)
class LrmConfig:
    """``InstantMesh.__init__``'s arguments; the rendering-only ones (samples per ray) are left out."""

    vit: ViTConfig
    transformer_dim: int
    transformer_layers: int
    transformer_heads: int
    triplane_low_res: int
    triplane_high_res: int
    triplane_dim: int
    grid_res: int
    grid_scale: float
    encoder_model_name: str = "facebook/dino-vitb16"

    @property
    def encoder_feat_dim(self) -> int:
        return self.vit.hidden_size


# configs/instant-mesh-large.yaml at upstream commit 08822c5.
INSTANT_MESH_LARGE = LrmConfig(
    vit=KNOWN_VITS["facebook/dino-vitb16"],
    transformer_dim=1024,
    transformer_layers=16,
    transformer_heads=16,
    triplane_low_res=32,
    triplane_high_res=64,
    triplane_dim=80,
    grid_res=128,
    grid_scale=2.1,
)


def load_config(path: Path) -> LrmConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BackendError(f"InstantMesh config {path} could not be read: {exc}") from None
    if not isinstance(raw, dict):
        raise BackendError(f"InstantMesh config {path} is not a mapping")
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "config") -> LrmConfig:
    """Upstream's yaml layout → LrmConfig; unknown architectures are refused, not guessed."""
    model = raw.get("model_config")
    if not isinstance(model, dict):
        raise BackendError(f"{source}: no model_config mapping")
    target = model.get("target", EXPECTED_TARGET)
    if target != EXPECTED_TARGET:
        raise BackendError(
            f'{source}: model_config.target is "{target}", but only {EXPECTED_TARGET} is implemented'
        )
    params = model.get("params") or {}
    name = str(params.get("encoder_model_name", "facebook/dino-vitb16"))
    overrides = params.get("encoder_vit")
    if name not in KNOWN_VITS and not overrides:
        raise BackendError(
            f'{source}: encoder "{name}" is unknown: use one of {", ".join(KNOWN_VITS)} '
            "or give its architecture in params.encoder_vit"
        )
    try:
        vit = replace(KNOWN_VITS.get(name, ViTConfig()), **(overrides or {}))
        base = INSTANT_MESH_LARGE
        config = LrmConfig(
            vit=vit,
            transformer_dim=int(params.get("transformer_dim", base.transformer_dim)),
            transformer_layers=int(params.get("transformer_layers", base.transformer_layers)),
            transformer_heads=int(params.get("transformer_heads", base.transformer_heads)),
            triplane_low_res=int(params.get("triplane_low_res", base.triplane_low_res)),
            triplane_high_res=int(params.get("triplane_high_res", base.triplane_high_res)),
            triplane_dim=int(params.get("triplane_dim", base.triplane_dim)),
            # InstantMesh.__init__'s own defaults (grid_scale 2.0), not the large yaml's.
            grid_res=int(params.get("grid_res", 128)),
            grid_scale=float(params.get("grid_scale", 2.0)),
            encoder_model_name=name,
        )
    except (TypeError, ValueError) as exc:
        raise BackendError(f"{source}: bad InstantMesh parameter ({exc})") from None
    if "encoder_feat_dim" in params and int(params["encoder_feat_dim"]) != vit.hidden_size:
        raise BackendError(
            f"{source}: encoder_feat_dim {params['encoder_feat_dim']} is not the ViT's width "
            f"{vit.hidden_size}"
        )
    if config.triplane_high_res != 2 * config.triplane_low_res:
        # The deconvolution (kernel 2, stride 2) always doubles; upstream stores the number but never uses it.
        raise BackendError(f"{source}: triplane_high_res must be twice triplane_low_res")
    return config
