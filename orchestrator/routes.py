"""The public API. Thin: validation lives in the schemas, state in JobStore, errors in meshforge.errors."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse

from meshforge.errors import Conflict, NotFound
from meshforge.schemas import (
    MAX_SEED,
    FromImageRequest,
    GenerateRequest,
    HealthResponse,
    JobCreated,
    JobList,
    JobOptions,
    JobState,
    JobStatus,
    OutputFormat,
    UploadResponse,
)
from meshforge.service import documented_errors as errors
from orchestrator.jobs import JobStore
from orchestrator.uploads import check_image_paths, check_view_count, store_uploads

router = APIRouter()

MEDIA_TYPES = {
    ".glb": "model/gltf-binary",
    ".obj.zip": "application/zip",
    ".fbx": "application/octet-stream",
    ".stl": "model/stl",
    ".usdz": "model/vnd.usdz+zip",
}
MAX_WAIT_SECONDS = 120.0
MAX_OFFSET = 1_000_000_000  # Redis range indexes are 64-bit: a larger offset was a 500 (found by fuzzing)


def _store(request: Request) -> JobStore:
    return request.app.state.jobs


def _fix_seed(body: JobOptions) -> None:
    """A job without a seed gets one, recorded in its request, so any job can be reproduced."""
    if body.seed is None:
        body.seed = secrets.randbelow(MAX_SEED + 1)


def _created(job_id: str) -> JobCreated:
    return JobCreated(job_id=job_id, status_url=f"/3d/status/{job_id}")


@router.post("/3d/generate", response_model=JobCreated, tags=["jobs"])
async def generate(body: GenerateRequest, request: Request) -> JobCreated:
    """Prompt → 3D asset. Returns at once; follow `status_url`."""
    _fix_seed(body)
    return _created(await _store(request).create("prompt", body.model_dump(mode="json")))


@router.post("/3d/from-image", response_model=JobCreated, tags=["jobs"])
async def from_image(body: FromImageRequest, request: Request) -> JobCreated:
    """Image(s) → 3D asset: 1, 4 or 8 views in the canonical order, as URLs or as paths under inputs/."""
    if body.image_paths is not None:
        check_image_paths(request.app.state.storage, body.image_paths)
    else:
        check_view_count(len(body.image_urls or []))
    _fix_seed(body)
    return _created(await _store(request).create("images", body.model_dump(mode="json", exclude_none=True)))


@router.post(
    "/3d/upload", response_model=UploadResponse, status_code=201, tags=["jobs"], responses=errors(413)
)
async def upload(request: Request, files: Annotated[list[UploadFile], File()]) -> UploadResponse:
    """Store images under inputs/; pass the returned paths as `image_paths` to `/3d/from-image`."""
    settings = request.app.state.settings
    paths = await store_uploads(
        request.app.state.storage, files, settings.max_upload_bytes, settings.max_images
    )
    return UploadResponse(image_paths=paths)


@router.get("/3d/status/{job_id}", response_model=JobStatus, tags=["jobs"], responses=errors(404))
async def status(
    job_id: str,
    request: Request,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Wait up to this many seconds for the job to finish before answering",
        ),
    ] = 0,
) -> JobStatus:
    store = _store(request)
    job = await store.get(job_id)
    deadline = time.monotonic() + wait
    while not job.state.is_terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        job = await store.get(job_id)
    return job


@router.get(
    "/3d/download/{job_id}",
    tags=["jobs"],
    response_class=FileResponse,
    responses=errors(404, 409),
)
async def download(job_id: str, request: Request) -> FileResponse:
    job = await _store(request).get(job_id)
    path = _finished_file(job, job.asset_path, "asset", "downloaded")
    suffix = OutputFormat(job.request["output_format"]).asset_suffix
    return FileResponse(path, media_type=MEDIA_TYPES[suffix], filename=f"{job_id}{suffix}")


@router.get(
    "/3d/preview/{job_id}",
    tags=["jobs"],
    response_class=FileResponse,
    responses=errors(404, 409),
)
async def preview(job_id: str, request: Request) -> FileResponse:
    """A PNG preview of the finished asset."""
    job = await _store(request).get(job_id)
    path = _finished_file(job, job.preview_path, "preview", "fetched")
    return FileResponse(path, media_type="image/png", filename=f"{job_id}.png")


def _finished_file(job: JobStatus, path: str | None, what: str, verb: str) -> Path:
    """A file a completed job left behind: 409 before completion, 404 once it is gone from disk."""
    if job.state != JobState.completed or not path:
        raise Conflict(
            f"job {job.job_id} is {job.state.value}; its {what} can be {verb} once it is completed"
        )
    if not Path(path).is_file():
        raise NotFound(f"the {what} of job {job.job_id} is no longer on disk")
    return Path(path)


@router.get("/3d/jobs", response_model=JobList, tags=["jobs"])
async def list_jobs(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    state: JobState | None = None,
) -> JobList:
    """Recent jobs, newest first."""
    jobs, total = await _store(request).list(offset, limit, state)
    return JobList(jobs=jobs, total=total, offset=offset, limit=limit)


@router.post("/3d/cancel/{job_id}", response_model=JobStatus, tags=["jobs"], responses=errors(404, 409))
async def cancel(job_id: str, request: Request) -> JobStatus:
    """Cancel a queued or running job; finished jobs answer 409."""
    store = _store(request)
    await store.cancel(job_id)
    return await store.get(job_id)


@router.get("/health", response_model=HealthResponse, tags=["health"])
async def health(request: Request) -> HealthResponse:
    """The orchestrator, Redis, and every stage replica as it reports itself."""
    redis_ok = True
    try:
        await request.app.state.redis.ping()
    except Exception:
        redis_ok = False
    stages = {name: await pool.health() for name, pool in request.app.state.pools.items()}
    healthy = redis_ok and all(
        r.get("status") == "ok" for replicas in stages.values() for r in replicas.values()
    )
    return HealthResponse(
        service="orchestrator",
        status="ok" if healthy else "degraded",
        detail={"redis": "ok" if redis_ok else "unreachable", "stages": stages},
    )
