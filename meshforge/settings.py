"""Every setting of every service, in one place, read from ``MESHFORGE_*`` environment variables.

The defaults describe the embedded stack (``make run``): every process on loopback, data folders in
the current directory. Docker and production deployments override them through the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from meshforge.addresses import AllowedNetworks
from meshforge.schemas import QualityTier
from meshforge.stage_schemas import ViewConsistency

UrlList = Annotated[list[str], NoDecode]


class TierProfile(BaseModel):
    """What a quality tier means for each stage."""

    views: int
    image_size: int
    voxel_resolution: int
    target_faces: int
    texture_size: int
    # How the image stage keeps generated views in agreement (docs/images.md).
    consistency: ViewConsistency = ViewConsistency.sheet


DEFAULT_TIERS: dict[QualityTier, TierProfile] = {
    QualityTier.standard: TierProfile(
        views=8, image_size=256, voxel_resolution=96, target_faces=20_000, texture_size=1024
    ),
    QualityTier.high: TierProfile(
        views=8, image_size=512, voxel_resolution=160, target_faces=80_000, texture_size=2048
    ),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESHFORGE_", env_file=".env", extra="ignore")

    # Storage: the four shared folders of the spec. Each can be moved on its own.
    data_dir: Path = Field(default_factory=Path.cwd)
    models_dir: Path | None = None
    inputs_dir: Path | None = None
    outputs_dir: Path | None = None
    cache_dir: Path | None = None

    redis_url: str = "redis://127.0.0.1:38179/0"
    log_level: str = "INFO"

    # Where each service listens when started with `python -m <service>`.
    host: str = "127.0.0.1"
    orchestrator_port: int = 38100
    image_service_port: int = 38110
    flux_service_port: int = 38120
    reconstruction_service_port: int = 38130
    postprocess_service_port: int = 38140

    # Replicas of each stage, as base URLs; work is spread over the free ones.
    image_service_urls: UrlList = ["http://127.0.0.1:38110"]
    flux_service_urls: UrlList = ["http://127.0.0.1:38120"]
    reconstruction_service_urls: UrlList = ["http://127.0.0.1:38130"]
    postprocess_service_urls: UrlList = ["http://127.0.0.1:38140"]

    # Backends, chosen per process.
    flux_backend: str = "procedural"
    reconstruction_backend: str = "visual_hull"
    postprocess_backend: str = "trimesh"

    # flux-service with flux_backend=diffusers: FLUX.1 through diffusers' FluxPipeline, loaded from models/
    # once at start-up (never from a hub at request time). Steps and guidance default per model:
    # schnell 4 steps / guidance 0, dev 50 steps / guidance 3.5.
    flux_model: str = "black-forest-labs/FLUX.1-schnell"
    flux_model_path: Path | None = None  # a plain folder; relative paths are under models/
    flux_device: str = "auto"  # auto (cuda when present), cuda, cuda:N, cpu
    flux_dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32
    flux_memory_mode: Literal["gpu", "model_offload", "sequential_offload"] = "gpu"
    flux_compile: bool = False  # torch.compile the transformer (slow first call, faster after)
    flux_steps: int | None = Field(default=None, ge=1, le=200)
    flux_guidance: float | None = Field(default=None, ge=0)
    flux_max_batch: int = Field(default=4, ge=1, le=16)  # images per pipeline call

    # reconstruction-service with reconstruction_backend=triposr: the published stabilityai/TripoSR
    # files (config.yaml + model.ckpt) from models/.
    triposr_model: str = "stabilityai/TripoSR"
    triposr_model_path: Path | None = None
    triposr_device: str = "auto"
    triposr_dtype: str = "auto"  # auto: fp16 autocast on GPU where safe, fp32 on CPU
    triposr_chunk_size: int = Field(default=65536, ge=256)  # points per density query
    triposr_mc_resolution: int = Field(default=256, ge=16, le=1024)
    triposr_mc_threshold: float = 25.0

    # image-service: view normalisation. matting_backend: flood_fill (plain backgrounds, no weights)
    # or onnx (a segmentation model such as U²-Net / ISNet / RMBG in ONNX form under models/).
    matting_backend: str = "flood_fill"
    matting_model_path: Path = Path("matting/u2net.onnx")  # relative paths are under models/
    foreground_ratio: float = Field(default=0.85, gt=0.1, le=1.0)

    # FBX export: headless Blender (the bpy wheel) in its own virtualenv, run as one process per export.
    # bpy pins numpy<2, so it cannot live in the service's own environment. Relative to the working dir.
    blender_python: Path = Path(".venv-blender/bin/python")
    blender_timeout_seconds: float = Field(default=120.0, gt=0)

    # Dispatcher.
    dispatcher_concurrency: int = Field(default=4, ge=1)
    lease_seconds: float = Field(default=15.0, gt=0)
    reap_interval_seconds: float = Field(default=5.0, gt=0)
    stage_timeout_seconds: float = Field(default=900.0, gt=0)
    replica_retry_seconds: float = Field(default=0.25, gt=0)
    request_timeout_seconds: float = Field(default=600.0, gt=0)

    # Public API limits.
    max_upload_bytes: int = 20 * 1024 * 1024
    max_images: int = 8
    download_max_bytes: int = 20 * 1024 * 1024
    download_timeout_seconds: float = 20.0
    download_max_redirects: int = Field(default=3, ge=0, le=20)
    download_content_types: list[str] = ["image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff"]

    # API keys, ownership and quotas (docs/security.md). Keys are off, and /3d/* open, unless a key list
    # is given: a JSON list of {"name", "sha256", "admin", "requests_per_minute", "max_concurrent_jobs"}
    # in a file (relative to the working dir) and/or inline. Limits: 0 means no limit.
    api_keys_file: Path | None = None
    api_keys: str | None = None
    default_requests_per_minute: int = Field(default=60, ge=0)  # per key: job-creating routes, uploads
    default_max_concurrent_jobs: int = Field(default=4, ge=0)  # per key: jobs not yet finished
    max_queued_jobs: int = Field(default=1000, ge=0)  # global: beyond this many waiting jobs, 503

    # The fleet's shared secret (docs/security.md). Set: every stage service refuses requests without
    # the header X-Meshforge-Internal-Token carrying it (401), and every internal client sends it.
    # Empty (the default, the embedded `make run`): the stage services are open, as on loopback.
    internal_token: str = ""

    # Untrusted images (meshforge/images.py): width × height allowed in an upload, download or file
    # under inputs/, checked from the header before decoding; and how many normalisation/decoding jobs
    # one image-service runs at once (more wait), which bounds its memory.
    max_image_pixels: int = Field(default=16_000_000, ge=1024)
    image_work_concurrency: int = Field(default=2, ge=1)

    # Delivery guarantees (docs/architecture.md): a job claimed this many times (its dispatcher died
    # or stalled each time) ends failed instead of being requeued again; and how long one attempt may
    # run before it fails (0: no limit).
    max_attempts: int = Field(default=3, ge=1)
    job_deadline_seconds: float = Field(default=3600.0, ge=0)

    # Outbound fetches (image URLs; meshforge.outbound): networks reachable although not public, as a
    # JSON list or comma-separated CIDRs, e.g. ["10.1.2.0/24"]. Empty: only public addresses.
    outbound_allowed_networks: AllowedNetworks = ()

    # Retention (orchestrator/retention.py): a finished job, its record and files are deleted this long
    # after it ended, and an upload no unfinished job uses this long after it was made (0: kept forever);
    # dispatchers sweep this often, deleting at most retention_batch jobs per sweep.
    job_retention_seconds: float = Field(default=604800.0, ge=0)
    upload_retention_seconds: float = Field(default=86400.0, ge=0)
    retention_sweep_seconds: float = Field(default=60.0, gt=0)
    retention_batch: int = Field(default=500, ge=1)

    tiers: dict[QualityTier, TierProfile] = Field(default_factory=lambda: dict(DEFAULT_TIERS))

    @field_validator(
        "image_service_urls",
        "flux_service_urls",
        "reconstruction_service_urls",
        "postprocess_service_urls",
        mode="before",
    )
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        """Accept a comma-separated list as well as a JSON array."""
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    def folder(self, name: str) -> Path:
        explicit: Path | None = getattr(self, f"{name}_dir")
        return (explicit or self.data_dir / name).resolve()

    @property
    def models_path(self) -> Path:
        return self.folder("models")

    @property
    def inputs_path(self) -> Path:
        return self.folder("inputs")

    @property
    def outputs_path(self) -> Path:
        return self.folder("outputs")

    @property
    def cache_path(self) -> Path:
        return self.folder("cache")

    def tier(self, tier: QualityTier) -> TierProfile:
        return self.tiers[tier]


@lru_cache
def get_settings() -> Settings:
    return Settings()
