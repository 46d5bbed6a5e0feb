"""The stage services' settings: image-service, flux-service, reconstruction-service, postprocess-service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from meshforge.settings.base import CommonSettings
from meshforge.settings.shared import (
    ClientTimeouts,
    FluxUrls,
    ImageLimitsSettings,
    OutboundSettings,
    TierSettings,
)

DEFAULT_DOWNLOAD_TYPES = ["image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff"]


class ImageSettings(
    CommonSettings, FluxUrls, ClientTimeouts, TierSettings, ImageLimitsSettings, OutboundSettings
):
    """`python -m image_service`: view normalisation, image downloads, and its calls to flux-service."""

    image_service_port: int = Field(default=38110, description="Port of image-service")

    # View normalisation (docs/images.md).
    matting_backend: str = Field(
        default="flood_fill",
        description=(
            "Background removal of every view: `flood_fill` (plain backgrounds, no weights) or `onnx` (a "
            "segmentation model) ([images](docs/images.md))"
        ),
    )
    matting_model_path: Path = Field(
        default=Path("matting/u2net.onnx"),
        description="The ONNX segmentation model (U²-Net, ISNet, RMBG), relative to `models/`",
    )
    foreground_ratio: float = Field(
        default=0.85, gt=0.1, le=1.0, description="Share of a normalised view the object spans"
    )

    # Images fetched from `image_urls` (image-service/downloads.py).
    download_max_bytes: int = Field(
        default=20 * 1024 * 1024, description="Largest image fetched from `image_urls`"
    )
    download_timeout_seconds: float = Field(
        default=20.0, description="Longest the fetch of one image URL may take, every hop and byte"
    )
    download_max_redirects: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Most redirects followed for one image URL (http and https only)",
    )
    download_content_types: list[str] = Field(
        default=DEFAULT_DOWNLOAD_TYPES,
        description="JSON list of accepted `Content-Type`s of fetched images",
        json_schema_extra={"shown_default": "png, jpeg, webp, bmp, tiff"},
    )


class FluxSettings(CommonSettings):
    """`python -m flux_service`: the text-to-image backend; FLUX.1 through diffusers' FluxPipeline, loaded
    from models/ once at start-up (never from a hub at request time)."""

    flux_service_port: int = Field(default=38120, description="Port of flux-service")
    flux_backend: str = Field(
        default="procedural",
        description=(
            "Text-to-image backend: `procedural` (offline shapes, no weights) or `diffusers` (FLUX.1) "
            "([backends](docs/backends.md))"
        ),
    )
    use_image_stub: bool = Field(
        default=False,
        validation_alias="USE_IMAGE_STUB",
        description=(
            "The spec's switch: `true` selects the `procedural` backend unless `MESHFORGE_FLUX_BACKEND` is "
            "set (which wins); `false` leaves the configured backend"
        ),
    )
    flux_model: str = Field(
        default="black-forest-labs/FLUX.1-schnell",
        validation_alias=AliasChoices("MESHFORGE_FLUX_MODEL", "FLUX_MODEL"),
        description=(
            "FLUX.1 model of the `diffusers` backend (`black-forest-labs/FLUX.1-dev` also works), found "
            "under `models/` ([FLUX](docs/flux.md))"
        ),
    )
    flux_model_path: Path | None = Field(
        default=None,
        description="A plain folder holding the pipeline instead (relative paths are under `models/`)",
    )
    flux_device: str = Field(
        default="auto", description="`auto` (the visible GPU, else the CPU), `cuda`, `cuda:N` or `cpu`"
    )
    flux_dtype: str = Field(
        default="auto",
        description="`auto` (bf16 on a GPU, fp32 on the CPU), `bfloat16`, `float16` or `float32`",
    )
    flux_memory_mode: Literal["gpu", "model_offload", "sequential_offload"] = Field(
        default="gpu",
        description=(
            "`gpu` (all on the GPU), `model_offload` or `sequential_offload` (less GPU memory, slower)"
        ),
    )
    flux_compile: bool = Field(
        default=False,
        description="`torch.compile` the FLUX transformer (slow first request, faster after)",
    )
    flux_steps: int | None = Field(
        default=None,
        ge=1,
        le=200,
        description="Override the model's steps (schnell: 4, dev: 50)",
        json_schema_extra={"shown_default": "per model"},
    )
    flux_guidance: float | None = Field(
        default=None,
        ge=0,
        description="Override the model's guidance (schnell: 0, dev: 3.5)",
        json_schema_extra={"shown_default": "per model"},
    )
    flux_max_batch: int = Field(default=4, ge=1, le=16, description="Most images in one FLUX pipeline call")

    @model_validator(mode="after")
    def _image_stub(self) -> FluxSettings:
        """USE_IMAGE_STUB=true means the procedural backend, unless MESHFORGE_FLUX_BACKEND (or an
        argument) names one."""
        if self.use_image_stub and "flux_backend" not in self.model_fields_set:
            self.flux_backend = "procedural"
        return self


class ReconstructionSettings(CommonSettings):
    """`python -m reconstruction_service`: the reconstruction backend; TripoSR from the published
    stabilityai/TripoSR files (config.yaml + model.ckpt), or InstantMesh from TencentARC/InstantMesh and
    sudo-ai/zero123plus-v1.2, under models/."""

    reconstruction_service_port: int = Field(default=38130, description="Port of reconstruction-service")
    reconstruction_backend: str = Field(
        default="visual_hull",
        description=(
            "Reconstruction backend: `visual_hull`, `triposr` or `instantmesh` ([backends](docs/backends.md))"
        ),
    )
    triposr_model: str = Field(
        default="stabilityai/TripoSR",
        description=(
            "TripoSR files (`config.yaml`, `model.ckpt`) under `models/` ([TripoSR](docs/triposr.md))"
        ),
    )
    triposr_model_path: Path | None = Field(
        default=None, description="A plain folder holding them instead (relative paths are under `models/`)"
    )
    triposr_device: str = Field(default="auto", description="As `MESHFORGE_FLUX_DEVICE`")
    triposr_dtype: str = Field(
        default="auto",
        description="As `MESHFORGE_FLUX_DTYPE`; `auto` uses half precision on a GPU only where it is safe",
    )
    triposr_chunk_size: int = Field(
        default=65536,
        ge=256,
        description="Points per density query during mesh extraction (lower it to save GPU memory)",
    )
    triposr_mc_resolution: int = Field(
        default=256, ge=16, le=1024, description="Marching-cubes grid (in both quality tiers)"
    )
    triposr_mc_threshold: float = Field(default=25.0, description="Marching-cubes density threshold")

    # InstantMesh (docs/instantmesh.md#the-backend): Zero123++ v1.2 draws six views, the LRM makes the mesh.
    instantmesh_model_path: Path | None = Field(
        default=None,
        description=(
            "A plain folder holding InstantMesh's `instant_mesh_large.ckpt` and fine-tuned UNet "
            "`diffusion_pytorch_model.bin`, instead of `TencentARC/InstantMesh` under `models/` (relative "
            "paths are under `models/`) ([InstantMesh](docs/instantmesh.md#the-backend))"
        ),
    )
    zero123plus_model_path: Path | None = Field(
        default=None,
        description=(
            "A plain folder holding the Zero123++ v1.2 pipeline (diffusers layout), instead of "
            "`sudo-ai/zero123plus-v1.2` under `models/` (relative paths are under `models/`)"
        ),
    )
    instantmesh_device: str = Field(
        default="auto", description="As `MESHFORGE_FLUX_DEVICE`, for Zero123++ and the InstantMesh model both"
    )
    zero123plus_dtype: str = Field(
        default="auto",
        description=(
            "Zero123++'s models: `auto` is float16 on a GPU (as upstream's run.py) and float32 on the CPU; "
            "or `bfloat16`, `float16`, `float32`"
        ),
    )
    instantmesh_dtype: str = Field(
        default="auto",
        description=(
            "The InstantMesh model's transformers: `auto` is float32 (as upstream); `bfloat16` or `float16` "
            "run them under autocast. Mesh extraction is always float32"
        ),
    )
    zero123plus_steps: int = Field(
        default=75,
        ge=1,
        le=200,
        description=(
            "Zero123++ denoising steps (75 as upstream's run.py; 28, its pipeline's default, is faster); a "
            "cancelled job stops between two"
        ),
    )
    zero123plus_guidance: float = Field(
        default=4.0, ge=1.0, le=20.0, description="Zero123++ classifier-free guidance (1: none)"
    )
    instantmesh_chunk_size: int = Field(
        default=262_144,
        ge=1024,
        description=(
            "Points per query of the SDF and colour heads during mesh extraction (lower it to save GPU "
            "memory)"
        ),
    )


class PostprocessSettings(CommonSettings):
    """`python -m postprocess_service`: cleaning and export; FBX by headless Blender (the bpy wheel) in its
    own virtualenv, one process per export (bpy pins numpy<2, so it cannot share the service's)."""

    postprocess_service_port: int = Field(default=38140, description="Port of postprocess-service")
    postprocess_backend: str = Field(default="trimesh", description="Post-processing backend")
    blender_python: Path = Field(
        default=Path(".venv-blender/bin/python"),
        description=(
            "Python with the `bpy` wheel that writes FBX (headless Blender, own virtualenv made by "
            "`scripts/bootstrap`), relative to the working dir; FBX is refused when it is missing"
        ),
    )
    blender_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Longest one FBX export by Blender may take"
    )
