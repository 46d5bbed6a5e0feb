"""The internal APIs between the dispatcher and the stage services (and image-service → flux-service).

Not part of the public contract: they change with the services. The public API is meshforge.schemas.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, HttpUrl, model_validator

from meshforge.schemas import MAX_SEED, Origin, OutputFormat, QualityTier, ViewCount
from meshforge.text import JOB_ID_PATTERN

# A path passed between services is checked against the shared folders by the service that gets it
# (meshforge.storage); these bounds refuse what no real path is before any file system call.
MAX_PATH_CHARS = 4096


def _job_id(value: str) -> str:
    if not re.fullmatch(JOB_ID_PATTERN, value):
        raise ValueError("a job id is 32 lowercase hexadecimal characters, as the orchestrator makes them")
    return value


def _shared_path(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    return value


JobId = Annotated[str, AfterValidator(_job_id), Field(json_schema_extra={"pattern": JOB_ID_PATTERN})]
SharedPath = Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS), AfterValidator(_shared_path)]


class StageAnswer(BaseModel):
    """What every stage service's answer carries besides its results: which backend did the work,
    how long it took, and details for the job's status record."""

    backend: str
    seconds: float
    detail: dict[str, Any] = Field(default_factory=dict)

    def recorded_detail(self) -> dict[str, Any]:
        """What the job's stage record shows of this answer."""
        return dict(self.detail)


class MeshAnswer(StageAnswer):
    """A stage answer that made a mesh: its size is part of the record."""

    vertices: int
    faces: int

    def recorded_detail(self) -> dict[str, Any]:
        return {**self.detail, "vertices": self.vertices, "faces": self.faces}


# The folder (image stage) or file (other stages) the dispatcher decided for a stage's output.
OUTPUT_DIR = Field(description="The job's folder under inputs/ for the views, decided by the dispatcher")
OUTPUT_PATH = Field(description="Where to write the result, decided by the dispatcher")


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
    job_id: JobId | None = None
    quality_tier: QualityTier = QualityTier.standard
    consistency: ViewConsistency | None = Field(
        default=None, description="Overrides the quality tier's view-consistency strategy"
    )
    output_dir: SharedPath = OUTPUT_DIR


class ImagineFromUrlsRequest(BaseModel):
    urls: list[HttpUrl] = Field(min_length=1)
    image_size: int = Field(default=512, ge=32, le=2048)
    job_id: JobId | None = None
    output_dir: SharedPath = OUTPUT_DIR


class ImagineFromPathsRequest(BaseModel):
    image_paths: list[SharedPath] = Field(min_length=1)
    image_size: int = Field(default=512, ge=32, le=2048)
    job_id: JobId | None = None
    output_dir: SharedPath = OUTPUT_DIR


class ImagesResult(StageAnswer):
    image_paths: list[str]
    views: list[str]

    def recorded_detail(self) -> dict[str, Any]:
        # The views' files, which the status record lists for the API to serve (GET /3d/views/…).
        return {**self.detail, "image_paths": list(self.image_paths)}


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
    output_path: SharedPath = Field(description="Where to write the PNG, under inputs/")


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
    job_id: JobId | None = Field(default=None, description="The job drawn for: its cancel stops the call")


class FluxGenerateRequest(FluxRenderOptions, FluxImageSpec):
    """POST /generate: one prompt, one image."""


class FluxBatchRequest(FluxRenderOptions):
    """POST /generate/batch: several images in one call, drawn in batched pipeline calls."""

    images: list[FluxImageSpec] = Field(min_length=1, max_length=MAX_FLUX_BATCH)

    @model_validator(mode="after")
    def _distinct_output_paths(self) -> FluxBatchRequest:
        paths = [image.output_path for image in self.images]
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


class ReconstructRequest(BaseModel):
    image_paths: list[SharedPath] = Field(min_length=1)
    output_format: str = "glb"
    views: list[str] | None = Field(default=None, description="Canonical view names, one per image")
    resolution: int = Field(default=96, ge=16, le=512)
    output_path: SharedPath = OUTPUT_PATH  # under cache/; its suffix follows output_format
    job_id: JobId | None = None


class ReconstructResponse(MeshAnswer):
    mesh_path: str


class PostprocessRequest(BaseModel):
    mesh_path: SharedPath
    output_format: OutputFormat = OutputFormat.glb
    target_faces: int | None = Field(default=None, ge=100)
    origin: Origin = Origin.bottom
    height_m: float | None = Field(default=None, gt=0)
    texture_size: int = Field(default=1024, ge=64, le=8192)
    output_path: SharedPath = OUTPUT_PATH  # under outputs/
    preview_path: SharedPath | None = Field(
        default=None, description="A PNG preview under outputs/; none: no preview"
    )
    master_path: SharedPath | None = Field(
        default=None,
        description=(
            "Where to keep the finished mesh as GLB too, under outputs/, to convert the job into other "
            "formats later (POST /postprocess/convert); ignored for a GLB job, whose asset is its "
            "master; none: no master"
        ),
    )
    job_id: JobId | None = None


class PostprocessResponse(MeshAnswer):
    asset_path: str
    preview_path: str | None = None
    master_path: str | None = Field(
        default=None, description="The job's master GLB (the asset itself for GLB); none: not kept"
    )
    formats: list[OutputFormat] = Field(
        default_factory=list,
        description="What the job can be downloaded as: its own format, and with a master its conversions",
    )

    def recorded_detail(self) -> dict[str, Any]:
        # The record says what the job can be downloaded as (JobStatus.formats, orchestrator/records.py).
        return {**super().recorded_detail(), "formats": [f.value for f in self.formats]}


class ConvertRequest(BaseModel):
    """POST /postprocess/convert: a finished job's master GLB, written again in another format."""

    job_id: JobId = Field(description="The job converted: its cancel stops the conversion")
    source_path: SharedPath = Field(description="The job's master GLB, under outputs/")
    output_format: OutputFormat
    output_path: SharedPath = OUTPUT_PATH  # under outputs/: outputs/<job_id><the format's asset suffix>


class ConvertResponse(MeshAnswer):
    output_path: str
    bytes: int = Field(description="The size of the file written")
