"""The public API's files: a finished job's asset (in its own format or converted to another, see
orchestrator/conversions.py) and preview, and the views its image stage made.

Every file is found through the job's record (never a path from the request), inside the storage
folder it belongs to, and only once the record says it exists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from meshforge.errors import Conflict, InvalidInput, NotFound
from meshforge.schemas import JobId, JobState, JobStatus, OutputFormat
from meshforge.service import documented_errors as errors
from meshforge.storage import Storage
from orchestrator.auth import CallerDep, check_job_access
from orchestrator.conversions import Conversions
from orchestrator.jobs import JobStore
from orchestrator.records import view_file

router = APIRouter()

MEDIA_TYPES = {
    ".glb": "model/gltf-binary",
    ".obj.zip": "application/zip",
    ".fbx": "application/octet-stream",
    ".stl": "model/stl",
    ".usdz": "model/vnd.usdz+zip",
}
# What orchestrator.records lists: views, the sheet, the reconstruction backend's own (Zero123++) views.
VIEW_PATTERN = r"^(\d{2}-[a-z]+(-[a-z]+)*|sheet|zero123-\d)\.png$"


@router.get(
    "/3d/download/{job_id}",
    tags=["jobs"],
    response_class=FileResponse,
    responses=errors(401, 403, 404, 409, 503),
)
async def download(
    job_id: JobId,
    request: Request,
    caller: CallerDep,
    output_format: Annotated[
        OutputFormat | None,
        Query(
            alias="format",
            description=(
                "Another format than the job's own (listed in its status's `formats`), converted from "
                "the job's master GLB on the first download that asks and kept. None, or the job's own "
                "format: the asset as it was made. 409 for a job without a master (made before "
                "conversions); 503 with `Retry-After` while no post-processing replica is free."
            ),
        ),
    ] = None,
) -> FileResponse:
    """The finished asset file, named `<job_id><suffix>`."""
    await check_job_access(_store(request), caller, job_id)
    job = await _store(request).get(job_id)
    own = OutputFormat(job.request["output_format"])
    if output_format is None or output_format is own:
        path = _finished_file(request, job, job.asset_path, "asset", "downloaded")
        suffix = own.asset_suffix
    else:
        _finished_file(request, job, job.asset_path, "asset", "downloaded")  # completed, asset still there
        conversions: Conversions = request.app.state.conversions
        path = await conversions.file(job, output_format, lambda: _store(request).raw(job_id))
        suffix = output_format.asset_suffix
    return FileResponse(path, media_type=MEDIA_TYPES[suffix], filename=f"{job_id}{suffix}")


@router.get(
    "/3d/preview/{job_id}",
    tags=["jobs"],
    response_class=FileResponse,
    responses=errors(401, 403, 404, 409),
)
async def preview(job_id: JobId, request: Request, caller: CallerDep) -> FileResponse:
    """A PNG preview of the finished asset."""
    await check_job_access(_store(request), caller, job_id)
    job = await _store(request).get(job_id)
    path = _finished_file(request, job, job.preview_path, "preview", "fetched")
    return FileResponse(path, media_type="image/png", filename=f"{job_id}.png")


def _finished_file(request: Request, job: JobStatus, path: str | None, what: str, verb: str) -> Path:
    """A file a completed job left behind: 409 before completion, 404 once it is gone from disk.

    The record names it relative to outputs/ (older records: an absolute path inside outputs/)."""
    if job.state != JobState.completed or not path:
        raise Conflict(
            f"job {job.job_id} is {job.state.value}; its {what} can be {verb} once it is completed"
        )
    storage: Storage = request.app.state.storage
    try:
        resolved = storage.inside(storage.outputs, path, what=what)
    except InvalidInput:
        resolved = None
    if resolved is None or not resolved.is_file():
        raise NotFound(f"the {what} of job {job.job_id} is no longer on disk")
    return resolved


@router.get(
    "/3d/views/{job_id}/{name}",
    tags=["jobs"],
    response_class=FileResponse,
    responses=errors(401, 403, 404),
)
async def view(
    job_id: JobId,
    name: Annotated[str, PathParam(max_length=64, pattern=VIEW_PATTERN, examples=["00-front.png"])],
    request: Request,
    caller: CallerDep,
) -> FileResponse:
    """A view (or the sheet) the job's image stage made, or one its reconstruction backend drew (InstantMesh's
    Zero123++ views), as listed in its record's `views`."""
    await check_job_access(_store(request), caller, job_id)
    job = await _store(request).get(job_id)
    if name not in {listed.name for listed in job.views}:
        raise NotFound(f"job {job_id} has no view {name}")
    storage: Storage = request.app.state.storage
    path = storage.inside(storage.inputs, view_file(job_id, name), what="view")
    if not path.is_file():
        raise NotFound(f"the view {name} of job {job_id} is no longer on disk")
    return FileResponse(path, media_type="image/png", filename=f"{job_id}-{name}")


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.jobs
    return store
