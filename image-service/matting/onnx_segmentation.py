"""Matting with a salient-object segmentation model in ONNX form (U²-Net, ISNet, RMBG), via onnxruntime.

These models share one layout: a single image input N×3×H×W, RGB scaled to 0..1 then normalised with a
per-model mean and standard deviation, at a fixed input size; the first output is the mask, N×1×H×W
(U²-Net has six more side outputs, which are ignored). Which normalisation a file needs is read from
its name (``PROFILES``); the input size from the model itself when it is fixed there.

The model file is ``MESHFORGE_MATTING_MODEL_PATH`` (relative paths are under models/; the default,
matting/u2net.onnx, is where ``scripts/download-models matting`` puts U²-Net), loaded once at start-up; a
missing or unreadable file is a start-up error that says where we looked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from meshforge.errors import BackendError, InvalidInput, ModelNotFound
from meshforge.settings import ImageSettings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelProfile:
    """How one family of segmentation models wants its input and gives its output."""

    input_size: int  # used when the model's input shape is dynamic
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stretch: bool  # the reference code rescales the mask to span 0..1 (min-max)


# Matched against the start of the file name (lower case), first match wins.
PROFILES: dict[str, ModelProfile] = {
    "u2net": ModelProfile(320, IMAGENET_MEAN, IMAGENET_STD, stretch=True),  # u2net, u2netp, u2net_human_seg
    "silueta": ModelProfile(320, IMAGENET_MEAN, IMAGENET_STD, stretch=True),  # a pruned U²-Net
    "isnet": ModelProfile(1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), stretch=True),
    "rmbg": ModelProfile(1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), stretch=True),  # briaai/RMBG-1.4
    "birefnet": ModelProfile(1024, IMAGENET_MEAN, IMAGENET_STD, stretch=False),  # RMBG-2.0 is BiRefNet
}
DEFAULT_PROFILE = "u2net"


def profile_for(path: Path) -> ModelProfile:
    name = path.name.lower()
    for prefix, profile in PROFILES.items():
        if name.startswith(prefix):
            return profile
    # briaai ships RMBG-1.4 as onnx/model.onnx: the folder names the family then.
    for part in reversed([p.lower() for p in path.parts[:-1]]):
        for prefix, profile in PROFILES.items():
            if prefix in part:
                return profile
    return PROFILES[DEFAULT_PROFILE]


def resolve_model_file(settings: ImageSettings) -> Path:
    configured = settings.matting_model_path
    path = configured if configured.is_absolute() else settings.models_path / configured
    if not path.is_file():
        raise ModelNotFound(
            f"matting model not found: no file at {path} (MESHFORGE_MATTING_MODEL_PATH={configured}; "
            f"relative paths are under {settings.models_path}). `scripts/download-models matting` puts "
            "U²-Net (Apache-2.0) at the default path; or point MESHFORGE_MATTING_MODEL_PATH at another "
            "model in ONNX form (ISNet, RMBG: `scripts/download-models --list`), or use "
            "MESHFORGE_MATTING_BACKEND=flood_fill for plain backgrounds."
        )
    return path


class OnnxSegmentation:
    """A segmentation model held in one onnxruntime session."""

    def __init__(self, path: Path, profile: ModelProfile | None = None) -> None:
        import onnxruntime

        self.path = path
        self.profile = profile or profile_for(path)
        providers = [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if p in onnxruntime.get_available_providers()
        ]  # fmt: skip
        try:
            self._session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise BackendError(f"could not load the matting model {path} with onnxruntime: {exc}") from exc
        inputs = self._session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise BackendError(
                f"the matting model {path} must take one image input N×3×H×W; it takes "
                + ", ".join(f"{i.name} {i.shape}" for i in inputs)
            )
        self._input_name = inputs[0].name
        fixed = [side for side in shape[2:] if isinstance(side, int) and side > 0]
        self.input_size = (fixed[0], fixed[-1]) if len(fixed) == 2 else (self.profile.input_size,) * 2
        self.name = "onnx"  # the configured name; the model file is in the detail
        self.detail = {"matting_model": path.name}

    @classmethod
    def from_settings(cls, settings: ImageSettings) -> OnnxSegmentation:
        return cls(resolve_model_file(settings))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 3:
            raise InvalidInput(
                f"matting needs an RGB or RGBA image of at least 3×3 pixels; got {array.shape}"
            )
        height, width = array.shape[:2]
        raw = self._session.run(None, {self._input_name: self._prepare(array[..., :3])})[0]
        mask = np.asarray(raw, dtype=np.float32).reshape(raw.shape[-2:])
        return self._finish(mask, width, height)

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        model_h, model_w = self.input_size
        resized = Image.fromarray(rgb.astype(np.uint8)).resize((model_w, model_h), Image.Resampling.BILINEAR)
        scaled = np.asarray(resized, dtype=np.float32) / 255.0
        mean = np.asarray(self.profile.mean, dtype=np.float32)
        std = np.asarray(self.profile.std, dtype=np.float32)
        normalised = (scaled - mean) / std
        return normalised.transpose(2, 0, 1)[None].astype(np.float32)

    def _finish(self, mask: np.ndarray, width: int, height: int) -> np.ndarray:
        if mask.min() < 0.0 or mask.max() > 1.0:  # logits (BiRefNet) rather than probabilities
            mask = 1.0 / (1.0 + np.exp(-mask))
        if self.profile.stretch:
            low, high = float(mask.min()), float(mask.max())
            mask = (mask - low) / (high - low) if high - low > 1e-6 else np.zeros_like(mask)
        full = Image.fromarray(mask.astype(np.float32), mode="F").resize(
            (width, height), Image.Resampling.BILINEAR
        )
        return np.clip(np.asarray(full, dtype=np.float32), 0.0, 1.0)
