"""Loading the published Zero123++ v1.2 folder (diffusers layout of ``sudo-ai/zero123plus-v1.2``) strictly.

``model_index.json`` names the components and upstream's custom pipeline class; we never run that class
(no ``custom_pipeline``, no remote code): each component is loaded here with its own diffusers or
transformers class, from the folder only (``local_files_only``), and checked against the class the
model index names, so a folder of another pipeline fails at start-up instead of producing noise.
InstantMesh replaces the UNet's weights with its fine-tuned ``diffusion_pytorch_model.bin``
(TencentARC/InstantMesh), loaded strictly as upstream's run.py does.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.schedulers.scheduling_euler_ancestral_discrete import EulerAncestralDiscreteScheduler
from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from meshforge.errors import BackendError, ModelNotFound
from meshforge.models import locate_model

log = logging.getLogger(__name__)

ZERO123PLUS_REPO = "sudo-ai/zero123plus-v1.2"
INSTANTMESH_REPO = "TencentARC/InstantMesh"
FINETUNED_UNET_FILE = "diffusion_pytorch_model.bin"  # InstantMesh's white-background UNet
MODEL_INDEX = "model_index.json"

_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# component → (library, class named in model_index.json, files it needs: one of each inner tuple)
COMPONENTS: dict[str, tuple[str, str, tuple[tuple[str, ...], ...]]] = {
    "vae": ("diffusers", "AutoencoderKL", (("config.json",), _DIFFUSERS_WEIGHTS)),
    "unet": ("diffusers", "UNet2DConditionModel", (("config.json",), _DIFFUSERS_WEIGHTS)),
    "scheduler": ("diffusers", "EulerAncestralDiscreteScheduler", (("scheduler_config.json",),)),
    "text_encoder": ("transformers", "CLIPTextModel", (("config.json",), _TRANSFORMERS_WEIGHTS)),
    "tokenizer": ("transformers", "CLIPTokenizer", (("vocab.json", "tokenizer.json"),)),
    "vision_encoder": (
        "transformers",
        "CLIPVisionModelWithProjection",
        (("config.json",), _TRANSFORMERS_WEIGHTS),
    ),
    "feature_extractor_clip": ("transformers", "CLIPImageProcessor", (("preprocessor_config.json",),)),
    "feature_extractor_vae": ("transformers", "CLIPImageProcessor", (("preprocessor_config.json",),)),
}


@dataclass
class Zero123PlusComponents:
    """The pipeline's parts, on their device and dtype, UNet already fine-tuned where asked."""

    folder: Path
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler: EulerAncestralDiscreteScheduler
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    vision_encoder: CLIPVisionModelWithProjection
    feature_extractor_clip: Any  # a transformers CLIP image processor (PIL backend)
    feature_extractor_vae: Any
    ramping_coefficients: tuple[float, ...]
    unet_weights: Path | None  # the fine-tuned UNet file, if one replaced the folder's UNet


def find_zero123plus_folder(
    models_dir: Path, explicit: Path | None = None, setting: str = "MESHFORGE_ZERO123PLUS_MODEL_PATH"
) -> Path:
    """The folder holding Zero123++'s model_index.json (plain folder or hub cache), or ModelNotFound."""
    return locate_model(
        models_dir, ZERO123PLUS_REPO, required=(MODEL_INDEX,), explicit=explicit, setting=setting
    )


def find_finetuned_unet(
    models_dir: Path, explicit: Path | None = None, setting: str = "MESHFORGE_INSTANTMESH_MODEL_PATH"
) -> Path:
    """InstantMesh's fine-tuned UNet file, where run.py downloads it from (TencentARC/InstantMesh)."""
    folder = locate_model(
        models_dir, INSTANTMESH_REPO, required=(FINETUNED_UNET_FILE,), explicit=explicit, setting=setting
    )
    return folder / FINETUNED_UNET_FILE


def read_model_index(folder: Path) -> dict[str, Any]:
    """model_index.json, checked: every component we load is listed with the class we load it as, and
    its files are in the folder; ramping_coefficients is a list of numbers."""
    try:
        index = json.loads((folder / MODEL_INDEX).read_text())
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"{folder / MODEL_INDEX} could not be read: {exc}") from None
    if not isinstance(index, dict):
        raise BackendError(f"{folder / MODEL_INDEX} is not a JSON object")
    for name, (library, class_name, needs) in COMPONENTS.items():
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2):
            raise ModelNotFound(
                f"Zero123++ folder {folder} is incomplete: {MODEL_INDEX} does not list the component "
                f'"{name}" ({library} {class_name})'
            )
        if entry[1] != class_name:
            raise BackendError(
                f'{folder / MODEL_INDEX}: component "{name}" is a {entry[0]} {entry[1]}, but Zero123++ '
                f"v1.2 has a {library} {class_name} there; this folder holds another model"
            )
        for alternatives in needs:
            if not any((folder / name / file).is_file() for file in alternatives):
                raise ModelNotFound(
                    f'Zero123++ folder {folder} is incomplete: component "{name}" lacks '
                    f"{' or '.join(f'{name}/{file}' for file in alternatives)}. Download it again with "
                    f"`scripts/download-models {ZERO123PLUS_REPO}`"
                )
    ramp = index.get("ramping_coefficients")
    if not (isinstance(ramp, list) and ramp and all(isinstance(x, int | float) for x in ramp)):
        raise BackendError(f"{folder / MODEL_INDEX} has no ramping_coefficients list (Zero123++ v1.2 has 77)")
    return index


def load_zero123plus(
    folder: Path,
    device: torch.device,
    dtype: torch.dtype,
    *,
    unet_weights: Path | None = None,
    timestep_spacing: str = "trailing",
) -> Zero123PlusComponents:
    """Every component of the folder on ``device`` in ``dtype``; ``unet_weights`` (InstantMesh's
    fine-tuned UNet) replaces the UNet's weights strictly. The scheduler is the folder's config as an
    EulerAncestralDiscreteScheduler with InstantMesh's ``timestep_spacing="trailing"``."""
    index = read_model_index(folder)
    models = {
        "vae": _load_diffusers(AutoencoderKL, folder / "vae", dtype),
        "unet": _load_diffusers(UNet2DConditionModel, folder / "unet", dtype),
        "text_encoder": _load_transformers(CLIPTextModel, folder / "text_encoder", dtype),
        "vision_encoder": _load_transformers(CLIPVisionModelWithProjection, folder / "vision_encoder", dtype),
    }
    if unet_weights is not None:
        load_finetuned_unet(models["unet"], unet_weights)
    for model in models.values():
        model.to(device).eval().requires_grad_(False)
    config = EulerAncestralDiscreteScheduler.load_config(folder / "scheduler")
    scheduler = EulerAncestralDiscreteScheduler.from_config(config, timestep_spacing=timestep_spacing)
    ramp = tuple(float(x) for x in index["ramping_coefficients"])
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    if len(ramp) != tokenizer.model_max_length:
        raise BackendError(
            f"{folder / MODEL_INDEX}: {len(ramp)} ramping_coefficients, but the prompt has "
            f"{tokenizer.model_max_length} tokens; each token needs one"
        )
    return Zero123PlusComponents(
        folder=folder,
        vae=models["vae"],
        unet=models["unet"],
        scheduler=scheduler,
        text_encoder=models["text_encoder"],
        tokenizer=tokenizer,
        vision_encoder=models["vision_encoder"],
        feature_extractor_clip=_load_image_processor(folder / "feature_extractor_clip"),
        feature_extractor_vae=_load_image_processor(folder / "feature_extractor_vae"),
        ramping_coefficients=ramp,
        unet_weights=unet_weights,
    )


def load_finetuned_unet(unet: UNet2DConditionModel, path: Path) -> None:
    """Replace every UNet weight with the file's, strictly: no tensor missing, none left over, every
    shape equal (upstream: ``pipeline.unet.load_state_dict(state_dict, strict=True)``)."""
    state = read_state_dict(path)
    expected = set(unet.state_dict())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise BackendError(
            f"fine-tuned UNet {path} does not fit Zero123++'s UNet: {len(missing)} tensors missing "
            f"{missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}"
        )
    try:
        unet.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # a shape differs
        raise BackendError(f"fine-tuned UNet {path} does not fit Zero123++'s UNet: {exc}") from None
    log.info("UNet weights replaced by %s (%d tensors)", path, len(state))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a torch pickle, read without running pickled code."""
    if not path.is_file():
        raise ModelNotFound(f"fine-tuned UNet weights {path} not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackendError(f"fine-tuned UNet weights {path} could not be read: {exc}") from None
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise BackendError(f"fine-tuned UNet weights {path} hold no state dict of tensors")
    return state


def _load_diffusers(cls: Any, folder: Path, dtype: torch.dtype) -> Any:
    with warnings.catch_warnings():  # diffusers 0.42 renames torch_dtype to dtype; older ones lack dtype
        warnings.filterwarnings("ignore", "`torch_dtype` is deprecated", FutureWarning)
        return _checked(folder, lambda: cls.from_pretrained(folder, **_LOAD, torch_dtype=dtype))


def _load_transformers(cls: Any, folder: Path, dtype: torch.dtype) -> Any:
    # transformers 5 names the argument dtype; 4.x only knows torch_dtype.
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return _checked(folder, lambda: cls.from_pretrained(folder, **_LOAD, **{key: dtype}))


_LOAD = {"local_files_only": True, "output_loading_info": True}


def _checked(folder: Path, load: Any) -> Any:
    """The model, or BackendError when a tensor was missing (the library would leave it random), had
    another shape, or is not the model's (buffers older files keep, like position_ids, aside)."""
    model, info = _wrap_load(folder, load)
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(item) for item in info.get("mismatched_keys") or ())
    unexpected = sorted(k for k in info.get("unexpected_keys") or () if not k.endswith("position_ids"))
    if missing or mismatched or unexpected:
        raise BackendError(
            f"Zero123++ component {folder} does not match its config.json: {len(missing)} tensors missing "
            f"{missing[:5]}, {len(mismatched)} of another shape {mismatched[:3]}, {len(unexpected)} "
            f"unexpected {unexpected[:5]}"
        )
    return model


def _load_image_processor(folder: Path) -> Any:
    # The PIL implementation, as upstream's transformers 4.34 CLIPImageProcessor is: transformers 5's
    # default CLIPImageProcessor resizes with torchvision when it is installed, which rounds differently.
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return _wrap_load(folder, lambda: cls.from_pretrained(folder, local_files_only=True))


def _wrap_load(folder: Path, load: Any) -> Any:
    try:
        return load()
    except (OSError, ValueError, RuntimeError) as exc:
        raise BackendError(f"Zero123++ component {folder} could not be loaded: {exc}") from None
