"""The stages a job walks through, declared once.

Each entry of ``STAGES`` says everything the dispatcher needs to run one stage: the job state it
shows, the progress reached when it starts, the replica pool of the service that does the work, how
the request is built from the job and the earlier stages' answers, the answer's model, the prefix of
its failure message, and where its files go. ``orchestrator.pipeline.JobRunner`` walks the table in
order; nothing else in the dispatcher names a stage. Adding a stage is one entry here plus its
service (and its replica URLs in the dispatcher's settings).

Every output path is decided here, from ``meshforge.storage.Storage``'s layout: the stage services
require it in their requests and only check that it lies in the right shared folder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from meshforge.schemas import FromImageRequest, JobState, OutputFormat, QualityTier
from meshforge.settings import StageUrls, TierProfile, TierSettings
from meshforge.stage_schemas import (
    ImagesResult,
    ImagineFromPathsRequest,
    ImagineFromUrlsRequest,
    ImagineGenerateRequest,
    PostprocessRequest,
    PostprocessResponse,
    ReconstructRequest,
    ReconstructResponse,
    StageAnswer,
)
from meshforge.storage import Storage
from orchestrator.view_plan import ViewPlan, ViewPlanner

A = TypeVar("A", bound=StageAnswer)


@dataclass
class JobContext:
    """One job as its stages see it: the submitted request, its tier, and the answers so far."""

    job_id: str
    kind: str  # "prompt" or "images", as the job record says
    request: dict[str, Any]
    tier: TierProfile
    storage: Storage
    planner: ViewPlanner
    answers: dict[JobState, StageAnswer] = field(default_factory=dict)
    _plan: ViewPlan | None = field(default=None, init=False, repr=False)

    async def plan(self) -> ViewPlan:
        """The job's views and reconstruction replicas, planned once for all of its stages."""
        if self._plan is None:
            self._plan = await self.planner.plan(self.tier)
        return self._plan

    def answer(self, state: JobState, model: type[A]) -> A:
        """The answer of an earlier stage, as the model the table declares for it."""
        found = self.answers[state]
        if not isinstance(found, model):
            raise TypeError(f"the {state} stage answered {type(found).__name__}, not {model.__name__}")
        return found


@dataclass(frozen=True)
class StageCall:
    """One request to a stage service: its route, body, and the job's message while it runs."""

    path: str
    body: BaseModel
    message: str
    replicas: tuple[str, ...] | None = None  # the replicas it may go to; None: any


@dataclass(frozen=True)
class Stage:
    state: JobState
    progress: int  # the job's progress (percent) when the stage starts
    service: str  # the replica pool that runs it: the service's name
    replica_urls: Callable[[StageUrls], list[str]]
    build: Callable[[JobContext, Path], Awaitable[StageCall]]  # the request, given the stage's output
    response: type[StageAnswer]
    failure: str  # the failure message's prefix: "<failure>: <the service's reason>"
    output: Callable[[JobContext], Path]  # the stage's file, or its folder of files


async def _images_call(job: JobContext, output: Path) -> StageCall:
    if job.kind == "prompt":
        plan = await job.plan()
        message = f"generating {plan.views} view{'s' if plan.views > 1 else ''} of the prompt"
        if plan.reason:
            message += f" ({plan.reason})"
        body = ImagineGenerateRequest(
            prompt=job.request["prompt"],
            num_views=plan.views,
            image_size=plan.image_size,
            seed=job.request.get("seed"),
            quality_tier=job.request["quality_tier"],
            job_id=job.job_id,
            output_dir=str(output),
        )
        return StageCall("/imagine/generate", body, message)
    source = FromImageRequest.model_validate(job.request)
    size = job.tier.image_size
    if source.image_urls is not None:
        urls = ImagineFromUrlsRequest(
            urls=source.image_urls, image_size=size, job_id=job.job_id, output_dir=str(output)
        )
        return StageCall("/imagine/from-urls", urls, f"downloading {len(source.image_urls)} images")
    paths = [str(job.storage.input_image(p)) for p in source.image_paths or []]
    files = ImagineFromPathsRequest(
        image_paths=paths, image_size=size, job_id=job.job_id, output_dir=str(output)
    )
    return StageCall("/imagine/from-paths", files, f"preparing {len(paths)} images")


async def _reconstruction_call(job: JobContext, output: Path) -> StageCall:
    images = job.answer(JobState.generating_images, ImagesResult)
    plan = await job.plan()
    body = ReconstructRequest(
        image_paths=images.image_paths,
        views=images.views,
        output_format="glb",
        resolution=job.tier.voxel_resolution,
        job_id=job.job_id,
        output_path=str(output),
    )
    count = len(images.image_paths)
    message = f"reconstructing a mesh from {count} view{'s' if count > 1 else ''}"
    if plan.routing:
        message += f" ({plan.routing})"
    return StageCall("/reconstruct/mesh", body, message, plan.replicas)


async def _postprocess_call(job: JobContext, output: Path) -> StageCall:
    mesh = job.answer(JobState.reconstructing_3d, ReconstructResponse)
    output_format = OutputFormat(job.request["output_format"])
    body = PostprocessRequest(
        mesh_path=mesh.mesh_path,
        output_format=output_format,
        target_faces=job.request.get("target_faces") or job.tier.target_faces,
        origin=job.request.get("origin", "bottom"),
        height_m=job.request.get("height_m"),
        texture_size=job.tier.texture_size,
        output_path=str(output),
        preview_path=str(job.storage.preview_path(job.job_id)),
        # The GLB the job's other formats are converted from (a GLB asset is its own master).
        master_path=None if output_format is OutputFormat.glb else str(job.storage.master_path(job.job_id)),
        job_id=job.job_id,
    )
    return StageCall("/postprocess/clean", body, f"cleaning the mesh and exporting {output_format}")


def _asset_path(job: JobContext) -> Path:
    suffix = OutputFormat(job.request["output_format"]).asset_suffix
    return job.storage.asset_path(job.job_id, suffix)


STAGES: tuple[Stage, ...] = (
    Stage(
        state=JobState.generating_images,
        progress=5,
        service="image-service",
        replica_urls=lambda settings: settings.image_service_urls,
        build=_images_call,
        response=ImagesResult,
        failure="image stage failed",
        output=lambda job: job.storage.job_inputs(job.job_id),
    ),
    Stage(
        state=JobState.reconstructing_3d,
        progress=40,
        service="reconstruction-service",
        replica_urls=lambda settings: settings.reconstruction_service_urls,
        build=_reconstruction_call,
        response=ReconstructResponse,
        failure="3D reconstruction failed",
        output=lambda job: job.storage.job_cache(job.job_id) / "reconstruction.glb",
    ),
    Stage(
        state=JobState.post_processing,
        progress=80,
        service="postprocess-service",
        replica_urls=lambda settings: settings.postprocess_service_urls,
        build=_postprocess_call,
        response=PostprocessResponse,
        failure="post-processing failed",
        output=_asset_path,
    ),
)

# The service whose answer is the job's asset, and the one whose replicas say what views they use.
FINAL_STAGE = STAGES[-1]
VIEW_CONSUMER = "reconstruction-service"


def final_asset(job: JobContext) -> PostprocessResponse:
    return job.answer(FINAL_STAGE.state, PostprocessResponse)


def replica_urls(settings: StageUrls) -> Mapping[str, list[str]]:
    """Each stage service's replica URLs, by service name, in the table's order."""
    return {stage.service: stage.replica_urls(settings) for stage in STAGES}


def tier_of(settings: TierSettings, request: dict[str, Any]) -> TierProfile:
    return settings.tier(QualityTier(request["quality_tier"]))
