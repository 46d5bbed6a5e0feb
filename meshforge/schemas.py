"""Request and response bodies of the public API (the contract: extend it, never break it).

The internal APIs between the dispatcher and the stage services are in meshforge.stage_schemas.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from meshforge.text import (
    JOB_ID_PATTERN,
    MAX_IMAGE_PATH_CHARS,
    check_image_path,
    check_image_url,
    check_job_id,
    clean_prompt,
)

MAX_SEED = 2**32 - 1


def random_seed() -> int:
    """A fresh seed for a request that gave none; the answer reports it, so the result can be redrawn."""
    return secrets.randbelow(MAX_SEED + 1)


# Image counts that have a canonical view layout (meshforge.geometry.views.VIEW_SETS holds the cameras).
ViewCount = Literal[1, 4, 8]
CANONICAL_VIEW_COUNTS: tuple[ViewCount, ...] = get_args(ViewCount)
MAX_IMAGES = max(CANONICAL_VIEW_COUNTS)

# A job id in a route's path: a malformed one is a 422 with a message, a well-formed unknown one a 404.
JobId = Annotated[
    str,
    AfterValidator(check_job_id),
    Path(description="A job id as returned on creation", json_schema_extra={"pattern": JOB_ID_PATTERN}),
]
# What image_paths / image_urls items must look like (meshforge.text says why); refused items are named.
ImagePath = Annotated[
    str,
    AfterValidator(check_image_path),
    Field(
        examples=["uploads/<id>/00.png"],
        json_schema_extra={"minLength": 1, "maxLength": MAX_IMAGE_PATH_CHARS},
    ),
]
ImageUrl = Annotated[HttpUrl, BeforeValidator(check_image_url)]


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
    center = "center"  # type: ignore[assignment]  # the public value shadows str.center, on purpose


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
    webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description=(
            "Where to POST the status record, signed, when the job ends (completed, failed or "
            "cancelled): an https URL of a public host (README: Webhooks)"
        ),
    )

    @field_validator("seed", "target_faces", mode="before")
    @classmethod
    def _a_json_number(cls, value: Any) -> Any:
        """true/false or "7" would pass as 1/0/7 in pydantic's lax mode: client mistakes, not numbers."""
        if isinstance(value, bool | str):
            raise ValueError("should be a whole number (a JSON number, not a string or true/false)")
        return value


class GenerateRequest(JobOptions):
    prompt: str = Field(
        min_length=1,
        max_length=2000,
        examples=["a red cube"],
        description="Tabs and line breaks count as spaces; other control characters are refused",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        value = clean_prompt(value).strip()
        if not value:
            raise ValueError("the prompt is empty: describe the object to generate, e.g. 'a red cube'")
        return value


class FromImageRequest(JobOptions):
    # minItems documents the rule the validator below words; max_length bounds the list before its items.
    image_urls: list[ImageUrl] | None = Field(
        default=None,
        max_length=MAX_IMAGES,
        description="http(s) URLs of 1, 4 or 8 views",
        json_schema_extra={"minItems": 1},
    )
    image_paths: list[ImagePath] | None = Field(
        default=None,
        max_length=MAX_IMAGES,
        description="Paths under inputs/ (as returned by POST /3d/upload) of 1, 4 or 8 views",
        json_schema_extra={"minItems": 1},
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


class WebhookState(StrEnum):
    pending = "pending"  # the job has not ended, or a delivery is due (again)
    delivered = "delivered"  # a receiver answered 2xx
    failed = "failed"  # every attempt failed; nothing more is sent


class WebhookDelivery(BaseModel):
    """How the job's webhook went: its delivery id is in every attempt's headers."""

    state: WebhookState
    delivery_id: str | None = None
    attempts: int = 0
    last_status_code: int | None = Field(default=None, description="The receiver's last HTTP status")
    last_error: str | None = Field(default=None, description="Why the last attempt failed")
    delivered_at: float | None = None
    next_attempt_at: float | None = None


class ViewKind(StrEnum):
    view = "view"  # one of the views the reconstruction used, normalised (docs/views.md)
    sheet = "sheet"  # the turnaround sheet the views were cut from, when they were drawn as one
    generated = "generated"  # a view the reconstruction backend drew itself (InstantMesh's Zero123++ views)


class JobView(BaseModel):
    """An image the job made or used on its way to the mesh, served at ``url``."""

    name: str = Field(examples=["00-front.png"])
    kind: ViewKind
    url: str = Field(examples=["/3d/views/0123456789abcdef0123456789abcdef/00-front.png"])


class StageProgress(BaseModel):
    """How far the running stage has got, where its service can tell: ``done`` of ``total`` ``unit``."""

    done: int = Field(ge=0, examples=[3])
    total: int = Field(ge=1, examples=[8])
    unit: str = Field(examples=["views"], description="What is counted: views, steps, chunks")


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
    webhook: WebhookDelivery | None = Field(default=None, description="Only for a job with a webhook_url")
    views: list[JobView] = Field(
        default_factory=list, description="The views (and sheet) of the image stage, once it has run"
    )
    stage_progress: StageProgress | None = Field(
        default=None,
        description=(
            "How far the running stage has got (views drawn, denoising steps, chunks, post-processing "
            "steps), where its service tells; null between stages, for stages that do not tell, and "
            "once the job has ended"
        ),
    )
    formats: list[OutputFormat] = Field(
        default_factory=list,
        description=(
            "The formats the completed job can be downloaded in (`GET /3d/download/{job_id}?format=…`): "
            "its own `output_format`, and those converted from its master GLB on the first download that "
            "asks; empty until the job is completed"
        ),
    )


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
    request_id: str | None = Field(
        default=None, description="Only on 500 internal_error: the id the server log names (X-Request-ID)"
    )


class Capabilities(BaseModel):
    """What a stage backend consumes and produces, declared by the backend and advertised in its
    service's /health, so that callers adapt to it without knowing which model runs."""

    max_views: int | None = Field(
        default=None, ge=1, description="Views the backend makes use of at most (1: single-image models)"
    )
    image_size: int | None = Field(default=None, ge=1, description="The image side it works at, if fixed")
    posed_views: bool = Field(
        default=False,
        description="It draws the canonical camera a request names itself (a renderer, not a model)",
    )
    batch: bool = Field(default=False, description="It takes several items in one call")

    @classmethod
    def declared_in(cls, answers: Iterable[dict[str, Any]]) -> list[Capabilities]:
        """The capabilities in replicas' /health answers, leaving out replicas that did not answer or
        do not say."""
        declared = []
        for answer in answers:
            try:
                declared.append(cls.model_validate(answer["capabilities"]))
            except (KeyError, TypeError, ValidationError):
                continue
        return declared


class HealthResponse(BaseModel):
    service: str
    status: str = "ok"
    backend: str | None = None
    busy: bool = False
    capabilities: Capabilities | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
