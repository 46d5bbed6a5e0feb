"""Request and response bodies of the public API and of the internal stage APIs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

MAX_SEED = 2**32 - 1
# Image counts that have a canonical view layout (meshforge.geometry.views.VIEW_SETS holds the cameras).
ViewCount = Literal[1, 4, 8]
CANONICAL_VIEW_COUNTS: tuple[int, ...] = get_args(ViewCount)


class OutputFormat(StrEnum):
    glb = "glb"
    obj = "obj"
    fbx = "fbx"
    stl = "stl"
    usdz = "usdz"  # Apple AR Quick Look

    @property
    def asset_suffix(self) -> str:
        """The asset file's suffix: OBJ comes with its .mtl and texture, zipped into one download."""
        return ".obj.zip" if self is OutputFormat.obj else f".{self.value}"


class Origin(StrEnum):
    bottom = "bottom"
    center = "center"


class QualityTier(StrEnum):
    standard = "standard"
    high = "high"


class JobState(StrEnum):
    queued = "queued"
    generating_images = "generating_images"
    reconstructing_3d = "reconstructing_3d"
    post_processing = "post_processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.completed, JobState.failed, JobState.cancelled})

# The stages a job runs through, in order, with the progress reached when each one starts.
STAGE_PROGRESS: dict[JobState, int] = {
    JobState.queued: 0,
    JobState.generating_images: 5,
    JobState.reconstructing_3d: 40,
    JobState.post_processing: 80,
    JobState.completed: 100,
}


class JobOptions(BaseModel):
    output_format: OutputFormat = OutputFormat.glb
    quality_tier: QualityTier = QualityTier.standard
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Same seed, same input → same asset"
    )
    target_faces: int | None = Field(
        default=None, ge=100, le=2_000_000, description="Polygon budget; default set by the quality tier"
    )
    origin: Origin = Field(default=Origin.bottom, description="Asset origin: bottom centre or centre")
    height_m: float | None = Field(
        default=None, gt=0, le=10_000, description="Scale the asset to this height in metres"
    )

    @field_validator("seed", "target_faces", mode="before")
    @classmethod
    def _a_json_number(cls, value: Any) -> Any:
        """true/false or "7" would pass as 1/0/7 in pydantic's lax mode: client mistakes, not numbers."""
        if isinstance(value, bool | str):
            raise ValueError("should be a whole number (a JSON number, not a string or true/false)")
        return value


class GenerateRequest(JobOptions):
    prompt: str = Field(min_length=1, max_length=2000, examples=["a red cube"])

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the prompt is empty: describe the object to generate, e.g. 'a red cube'")
        return value


class FromImageRequest(JobOptions):
    # minItems/maxItems document the rule; the validator below words the error.
    image_urls: list[HttpUrl] | None = Field(
        default=None,
        description="http(s) URLs of 1, 4 or 8 views",
        json_schema_extra={"minItems": 1, "maxItems": 8},
    )
    image_paths: list[str] | None = Field(
        default=None,
        description="Paths under inputs/ (as returned by POST /3d/upload) of 1, 4 or 8 views",
        json_schema_extra={"minItems": 1, "maxItems": 8},
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> FromImageRequest:
        if (self.image_urls is None) == (self.image_paths is None):
            raise ValueError("give exactly one of image_urls or image_paths")
        images = self.image_urls if self.image_urls is not None else self.image_paths
        if not images:
            raise ValueError("the image list is empty: give 1, 4 or 8 images in the canonical view order")
        return self


class JobCreated(BaseModel):
    job_id: str
    status_url: str


class StageRecord(BaseModel):
    backend: str | None = None
    seconds: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class JobStatus(BaseModel):
    job_id: str
    kind: str
    state: JobState
    message: str
    asset_path: str | None = None
    download_url: str | None = None
    preview_path: str | None = None
    preview_url: str | None = None
    progress: int = Field(ge=0, le=100)
    created_at: float
    updated_at: float
    request: dict[str, Any]
    stages: dict[str, StageRecord] = Field(
        default_factory=dict, description="Per-stage backend, timing, details"
    )
    attempts: int = 0


class JobList(BaseModel):
    jobs: list[JobStatus]
    total: int
    offset: int
    limit: int


class UploadResponse(BaseModel):
    image_paths: list[str] = Field(description="Paths to pass as image_paths to POST /3d/from-image")


class ErrorResponse(BaseModel):
    """What every error answer of every service carries (meshforge.service.install_error_handlers)."""

    detail: str = Field(description="What went wrong, in words meant for people")
    code: str = Field(description="A stable machine-readable code, e.g. invalid_request, not_found")


class HealthResponse(BaseModel):
    service: str
    status: str = "ok"
    backend: str | None = None
    busy: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)


# --- internal stage APIs -------------------------------------------------------------------------


class ViewConsistency(StrEnum):
    """How the image stage keeps the views of one prompt in agreement (docs/images.md)."""

    independent = "independent"  # one generation per view, each with its own seed: the control
    anchored = "anchored"  # one seed and one object description for every view, the front drawn first
    sheet = "sheet"  # one turnaround-sheet generation showing every view, split into views


class ImagineGenerateRequest(BaseModel):
    prompt: str = Field(min_length=1)
    num_views: ViewCount = 8
    image_size: int = Field(default=512, ge=32, le=2048)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    job_id: str | None = None
    quality_tier: QualityTier = QualityTier.standard
    consistency: ViewConsistency | None = Field(
        default=None, description="Overrides the quality tier's view-consistency strategy"
    )


class ImagineFromUrlsRequest(BaseModel):
    urls: list[HttpUrl] = Field(min_length=1)
    image_size: int = Field(default=512, ge=32, le=2048)
    job_id: str | None = None


class ImagineFromPathsRequest(BaseModel):
    image_paths: list[str] = Field(min_length=1)
    image_size: int = Field(default=512, ge=32, le=2048)
    job_id: str | None = None


class ImagesResult(BaseModel):
    image_paths: list[str]
    views: list[str]
    backend: str
    seconds: float
    detail: dict[str, Any] = Field(default_factory=dict)


# Images per /generate/batch request; flux-service splits them into pipeline calls of flux_max_batch.
MAX_FLUX_BATCH = 32


class FluxImageSpec(BaseModel):
    """One image to draw: its prompt, seed, view and file."""

    prompt: str = Field(min_length=1)
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Same seed and settings → same image; none: random"
    )
    view: str | None = Field(
        default=None, description="Canonical view name; backends that pose objects use it"
    )
    output_path: str | None = Field(default=None, description="Where to write the PNG, under inputs/")


class FluxRenderOptions(BaseModel):
    """What every image of one call shares. FLUX draws sizes that are multiples of 16."""

    width: int = Field(default=512, ge=32, le=2048)
    height: int = Field(default=512, ge=32, le=2048)
    num_inference_steps: int | None = Field(
        default=None, ge=1, le=200, description="none: the model's default (schnell 4, dev 50)"
    )
    guidance_scale: float | None = Field(
        default=None, ge=0, le=30, description="none: the model's default (schnell 0, dev 3.5)"
    )
    return_b64: bool = Field(default=True, description="false: only image_path, to keep answers small")


class FluxGenerateRequest(FluxRenderOptions, FluxImageSpec):
    """POST /generate: one prompt, one image."""


class FluxBatchRequest(FluxRenderOptions):
    """POST /generate/batch: several images in one call, drawn in batched pipeline calls."""

    images: list[FluxImageSpec] = Field(min_length=1, max_length=MAX_FLUX_BATCH)

    @model_validator(mode="after")
    def _distinct_output_paths(self) -> FluxBatchRequest:
        paths = [image.output_path for image in self.images if image.output_path is not None]
        if len(paths) != len(set(paths)):
            raise ValueError("two images of one batch name the same output_path")
        return self


class FluxImage(BaseModel):
    image_path: str
    image_b64: str | None = None
    seed: int | None = Field(default=None, description="The seed used (drawn at random when none was given)")


class FluxGenerateResponse(FluxImage):
    backend: str
    seconds: float
    num_inference_steps: int | None = None
    guidance_scale: float | None = None


class FluxBatchResponse(BaseModel):
    images: list[FluxImage]
    backend: str
    seconds: float
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    pipeline_calls: int = Field(description="Batched model calls the images took (flux_max_batch each)")


class ReconstructionInput(BaseModel):
    """What a reconstruction backend makes use of, advertised in its /health detail as ``input``: the
    dispatcher asks the image stage for no more views than every replica uses."""

    max_views: int = Field(ge=1, description="1 for single-image models (TripoSR); 8 for multi-view")
    image_size: int | None = Field(default=None, description="The view size the model works at, if any")


class ReconstructRequest(BaseModel):
    image_paths: list[str] = Field(min_length=1)
    output_format: str = "glb"
    views: list[str] | None = Field(default=None, description="Canonical view names, one per image")
    resolution: int = Field(default=96, ge=16, le=512)
    output_path: str | None = None
    job_id: str | None = None


class ReconstructResponse(BaseModel):
    mesh_path: str
    backend: str
    vertices: int
    faces: int
    seconds: float
    detail: dict[str, Any] = Field(default_factory=dict)


class PostprocessRequest(BaseModel):
    mesh_path: str
    output_format: OutputFormat = OutputFormat.glb
    target_faces: int | None = Field(default=None, ge=100)
    origin: Origin = Origin.bottom
    height_m: float | None = Field(default=None, gt=0)
    texture_size: int = Field(default=1024, ge=64, le=8192)
    output_path: str | None = None
    preview: bool = True
    job_id: str | None = None


class PostprocessResponse(BaseModel):
    asset_path: str
    preview_path: str | None = None
    backend: str
    vertices: int
    faces: int
    seconds: float
    detail: dict[str, Any] = Field(default_factory=dict)
