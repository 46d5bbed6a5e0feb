"""The InstantMesh reconstruction model (LRM), and loading ``instant_mesh_large.ckpt`` strictly.

Attribute names are the checkpoint's prefixes after ``lrm_generator.``: ``encoder``, ``transformer``,
``synthesizer``. The FlexiCubes grid holds no parameters; mesh.py builds it per device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from meshforge.errors import BackendError
from reconstruction_service.instantmesh.config import INSTANT_MESH_LARGE, LrmConfig, load_config
from reconstruction_service.instantmesh.encoder import CameraModulatedDino
from reconstruction_service.instantmesh.synthesizer import Synthesizer
from reconstruction_service.instantmesh.transformer import TriplaneTransformer

WEIGHTS_FILE = "instant_mesh_large.ckpt"
# Optional, upstream's yaml format: only the tiny test models ship one (the published repo has none).
CONFIG_FILE = "instant-mesh-large.yaml"
CHECKPOINT_PREFIX = "lrm_generator."


class InstantMeshLRM(nn.Module):
    def __init__(self, config: LrmConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = CameraModulatedDino(config.vit)
        self.transformer = TriplaneTransformer(config)
        self.synthesizer = Synthesizer(config.triplane_dim)

    def forward(self, images: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
        """images (B, V, 3, H, W) in 0..1, cameras (B, V, 16) → triplanes (B, 3, C, 2·low, 2·low)."""
        return self.transformer(self.encoder(images, cameras))


def build_model(config: LrmConfig, device: torch.device | str = "cpu") -> InstantMeshLRM:
    with torch.device(device):
        return InstantMeshLRM(config)


def lrm_state_dict(checkpoint: Any, source: str) -> dict[str, torch.Tensor]:
    """What upstream's run.py loads: ``checkpoint["state_dict"]``, only the ``lrm_generator.`` keys,
    the prefix removed. Anything else in the file (training-only networks, optimiser state) is dropped."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise BackendError(f"{source} is not an InstantMesh checkpoint: it has no state_dict")
    state = {
        key.removeprefix(CHECKPOINT_PREFIX): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(CHECKPOINT_PREFIX)
    }
    if not state:
        raise BackendError(f"{source} holds no {CHECKPOINT_PREFIX}* tensors")
    return state


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (non-zip) file cannot be memory-mapped
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # weights_only refuses pickled objects other than tensors and containers: such a file is not
        # loaded at all rather than unpickled unsafely.
        raise BackendError(f"InstantMesh weights {path} could not be read: {exc}") from None
    return lrm_state_dict(checkpoint, str(path))


def load_state(model: InstantMeshLRM, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict: every tensor must name a parameter of the same shape and every parameter must be there."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(
                    f"{label}: {', '.join(keys[:8])}" + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
                )
        raise BackendError(f"{source} does not match the InstantMesh model: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True, assign=True)


def load_pretrained(folder: Path, device: torch.device | str = "cpu") -> InstantMeshLRM:
    """The model in ``folder`` (the ``TencentARC/InstantMesh`` snapshot), fp32 on ``device``, eval mode."""
    config_path = folder / CONFIG_FILE
    config = load_config(config_path) if config_path.is_file() else INSTANT_MESH_LARGE
    state = read_checkpoint(folder / WEIGHTS_FILE)
    model = build_model(config, "meta")  # filled by assignment: 379 M parameters never initialised twice
    load_state(model, state, str(folder / WEIGHTS_FILE))
    model.encoder.reset_buffers(torch.device("cpu"))
    return model.float().to(device).eval().requires_grad_(False)
