"""postprocess-service: raw mesh → cleaned, reduced, exported asset.

POST /postprocess/clean: mesh_path, output_format (+ target_faces, output_path) → asset_path.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request

from meshforge.cancellation import WORK, add_cancel_route, run_cancellable
from meshforge.internal_token import require_internal_token
from meshforge.logging import work_span
from meshforge.schemas import HealthResponse
from meshforge.service import add_health_route, service_app, start_backend
from meshforge.settings import PostprocessSettings, load_settings
from meshforge.stage_schemas import PostprocessRequest, PostprocessResponse
from meshforge.storage import Storage
from postprocess_service.backends import load_backend
from postprocess_service.backends.base import FinishJob

SERVICE = "postprocess-service"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings(PostprocessSettings)
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
    job = FinishJob(
        mesh_path=mesh_path,
        output_path=storage.inside(storage.outputs, body.output_path, what="output path"),
        output_format=body.output_format.value,
        target_faces=body.target_faces,
        origin=body.origin,
        height_m=body.height_m,
        texture_size=body.texture_size,
        preview_path=_preview(storage, body),
    )
    started = time.monotonic()
    with work_span(body.job_id, SERVICE):
        detail = await run_cancellable(backend.finish, job, job_id=body.job_id, request=request)
    return PostprocessResponse(
        asset_path=str(job.output_path),
        preview_path=str(job.preview_path) if job.preview_path else None,
        backend=backend.name,
        vertices=detail.pop("vertices"),
        faces=detail.pop("faces"),
        seconds=round(time.monotonic() - started, 3),
        detail=detail,
    )


def _preview(storage: Storage, body: PostprocessRequest) -> Path | None:
    if body.preview_path is None:
        return None
    return storage.inside(storage.outputs, body.preview_path, what="preview path")
