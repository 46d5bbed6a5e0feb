"""postprocess-service: raw mesh → cleaned, reduced, exported asset; a finished job in another format.

POST /postprocess/clean: mesh_path, output_format (+ target_faces, output_path, master_path) → asset_path.
POST /postprocess/convert: a job's master GLB, output_format, output_path → the file in that format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request

from meshforge.cancellation import WORK, add_cancel_route, run_cancellable
from meshforge.errors import InvalidInput, ServiceBusy
from meshforge.internal_token import require_internal_token
from meshforge.logging import work_span
from meshforge.schemas import HealthResponse, OutputFormat
from meshforge.service import add_health_route, service_app, start_backend
from meshforge.settings import PostprocessSettings, load_settings
from meshforge.stage_schemas import ConvertRequest, ConvertResponse, PostprocessRequest, PostprocessResponse
from meshforge.storage import Storage
from postprocess_service.backends import load_backend
from postprocess_service.backends.base import FinishJob
from postprocess_service.convert import MASTER_FORMAT, ConvertJob, convert_master, require_writable

SERVICE = "postprocess-service"
# Conversions run at once, at most, beside the jobs' own post-processing: they are asked for by
# downloads, so a burst of them must not starve the jobs. One more answers `busy` (503).
MAX_CONVERSIONS = 2
CONVERSION_RETRY_SECONDS = 2.0
_conversions = asyncio.Semaphore(MAX_CONVERSIONS)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings(PostprocessSettings)
    app.state.settings = settings
    app.state.storage = Storage(settings)
    app.state.storage.ensure()
    app.state.backend = start_backend(SERVICE, lambda: load_backend(settings))
    yield


app = service_app(SERVICE, lifespan=lifespan)
require_internal_token(app, SERVICE, load_settings(PostprocessSettings).internal_token)
add_health_route(
    app,
    SERVICE,
    lambda: HealthResponse(
        service=SERVICE,
        backend=app.state.backend.name,
        busy=WORK.busy,  # jobs run side by side here; busy while any runs
        detail={"formats": sorted(app.state.backend.formats)},
    ),
)
add_cancel_route(app)


@app.post("/postprocess/clean", response_model=PostprocessResponse)
async def clean(body: PostprocessRequest, request: Request) -> PostprocessResponse:
    storage: Storage = request.app.state.storage
    backend = request.app.state.backend
    mesh_path = storage.shared_file(body.mesh_path, (storage.cache,))  # the reconstruction stage's mesh
    is_master = body.output_format is OutputFormat.glb  # a GLB asset is the job's master itself
    job = FinishJob(
        mesh_path=mesh_path,
        output_path=storage.inside(storage.outputs, body.output_path, what="output path"),
        output_format=body.output_format.value,
        target_faces=body.target_faces,
        origin=body.origin,
        height_m=body.height_m,
        texture_size=body.texture_size,
        preview_path=_optional(storage, body.preview_path, "preview path"),
        master_path=None if is_master else _optional(storage, body.master_path, "master path"),
    )
    if job.master_path is not None and job.master_path in (job.output_path, job.preview_path):
        raise InvalidInput("master_path names the asset or the preview: the master is a file of its own")
    started = time.monotonic()
    with work_span(body.job_id, SERVICE):
        detail = await run_cancellable(backend.finish, job, job_id=body.job_id, request=request)
    master = job.output_path if is_master else job.master_path
    return PostprocessResponse(
        asset_path=str(job.output_path),
        preview_path=str(job.preview_path) if job.preview_path else None,
        master_path=str(master) if master else None,
        formats=_formats(body.output_format, backend.formats if master else frozenset()),
        backend=backend.name,
        vertices=detail.pop("vertices"),
        faces=detail.pop("faces"),
        seconds=round(time.monotonic() - started, 3),
        detail=detail,
    )


@app.post("/postprocess/convert", response_model=ConvertResponse)
async def convert(body: ConvertRequest, request: Request) -> ConvertResponse:
    """A finished job's master GLB written as ``output_format`` (postprocess_service.convert)."""
    storage: Storage = request.app.state.storage
    settings: PostprocessSettings = request.app.state.settings
    source = storage.shared_file(body.source_path, (storage.outputs,))
    output = storage.shared_file(body.output_path, (storage.outputs,))
    if source.suffix.lower() != f".{MASTER_FORMAT}":
        raise InvalidInput(f'source_path "{source.name}" is not a GLB: conversions start from a master GLB')
    if output == source:
        raise InvalidInput("output_path is the source itself: a conversion never overwrites its master")
    require_writable(body.output_format.value, settings.blender_python)
    if _conversions.locked():
        raise ServiceBusy(
            f"{SERVICE} is already converting {MAX_CONVERSIONS} files", retry_after=CONVERSION_RETRY_SECONDS
        )
    job = ConvertJob(source_path=source, output_path=output, output_format=body.output_format.value)
    started = time.monotonic()
    async with _conversions:
        with work_span(body.job_id, SERVICE):
            detail = await run_cancellable(
                convert_master,
                job,
                settings.blender_python,
                settings.blender_timeout_seconds,
                job_id=body.job_id,
                request=request,
            )
    return ConvertResponse(
        output_path=str(output),
        bytes=detail.pop("bytes"),
        backend=detail.pop("writer"),
        vertices=detail.pop("vertices"),
        faces=detail.pop("faces"),
        seconds=round(time.monotonic() - started, 3),
        detail=detail,
    )


def _optional(storage: Storage, path: str | None, what: str) -> Path | None:
    return None if path is None else storage.inside(storage.outputs, path, what=what)


def _formats(own: OutputFormat, convertible: frozenset[str]) -> list[OutputFormat]:
    """The job's own format and what its master converts to, in OutputFormat's order."""
    return [f for f in OutputFormat if f is own or f.value in convertible]
