"""The whole TripoSR model, and loading the published folder (config.yaml + model.ckpt) strictly."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from meshforge.errors import BackendError
from reconstruction_service.triposr.backbone import Transformer1D
from reconstruction_service.triposr.config import TriposrConfig, load_config
from reconstruction_service.triposr.decoder import NeRFMLP
from reconstruction_service.triposr.tokenizers import ImageTokenizer, TriplaneTokenizer, resize_for_model
from reconstruction_service.triposr.upsampler import TriplaneUpsampler

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.ckpt"


class TSR(nn.Module):
    """Attribute names are the checkpoint's top-level prefixes; the renderer holds no parameters."""

    def __init__(self, config: TriposrConfig) -> None:
        super().__init__()
        self.config = config
        self.image_tokenizer = ImageTokenizer(config.vit)
        self.tokenizer = TriplaneTokenizer(config.plane_size, config.plane_channels)
        self.backbone = Transformer1D(config.backbone)
        self.post_processor = TriplaneUpsampler(config.upsample_in_channels, config.upsample_out_channels)
        self.decoder = NeRFMLP(config.decoder)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Conditioning images (B, H, W, 3) in 0..1 → triplanes (B, 3, C, 2·plane, 2·plane)."""
        pixels = resize_for_model(images, self.config.cond_image_size)
        context = self.image_tokenizer(pixels)
        tokens = self.backbone(self.tokenizer(images.shape[0]), context)
        return self.post_processor(self.tokenizer.detokenize(tokens))


def build_model(config: TriposrConfig, device: torch.device | str = "cpu") -> TSR:
    with torch.device(device):
        return TSR(config)


def load_pretrained(folder: Path, device: torch.device | str = "cpu") -> TSR:
    """The model in ``folder`` in fp32 on ``device``, in eval mode. Every tensor in the file must match
    a parameter of the same name and shape, and every parameter must be in the file."""
    config = load_config(folder / CONFIG_FILE)
    state = _read_weights(folder / WEIGHTS_FILE)
    # Built on meta and filled by assignment: the 1.7 GB model is never initialised randomly first.
    model = build_model(config, "meta")
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise BackendError(f"{folder / WEIGHTS_FILE} does not match {folder / CONFIG_FILE}: {exc}") from None
    model.image_tokenizer.reset_buffers(torch.device("cpu"))
    return model.float().to(device).eval().requires_grad_(False)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a file in the legacy (non-zip) format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackendError(f"TripoSR weights {path} could not be read: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackendError(f"TripoSR weights {path} hold no state dict")
    return state
