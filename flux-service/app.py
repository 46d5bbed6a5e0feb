"""flux-service: one text-to-image model per process (one per GPU), loaded at start-up and kept hot.

POST /generate: prompt, width, height, optional seed → image_path (PNG under inputs/) and image_b64.
POST /generate/batch: several prompts with one size → one result each, drawn in batched model calls.
One request at a time; a second one gets 503 with Retry-After so the caller tries another replica.
A backend that cannot load (no weights under models/) stops the process at start-up with its reason.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request

from flux_service.backends import load_backend
from flux_service.backends.base import ImageGenerator, ImageJob, Rendered, RenderOptions
from meshforge.cancellation import add_cancel_route
from meshforge.errors import BackendError, InvalidInput
from meshforge.images import encode_png
from meshforge.internal_token import require_internal_token
from meshforge.schemas import HealthResponse, random_seed
from meshforge.service import (
    ExclusiveRunner,
    add_health_route,
    service_app,
    start_backend,
)
from meshforge.settings import FluxSettings, load_settings
from meshforge.stage_schemas import (
    FluxBatchRequest,
    FluxBatchResponse,
    FluxGenerateRequest,
    FluxGenerateResponse,
    FluxImage,
    FluxImageSpec,
    FluxRenderOptions,
)
from meshforge.storage import Storage, atomic_write_bytes

SERVICE = "flux-service"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings(FluxSettings)
    app.state.storage = Storage(settings)
    app.state.storage.ensure()
    app.state.backend = start_backend(SERVICE, lambda: load_backend(settings))
    app.state.runner = ExclusiveRunner(SERVICE)
    yield


app = service_app(SERVICE, lifespan=lifespan)
require_internal_token(app, SERVICE, load_settings(FluxSettings).internal_token)
add_health_route(
    app,
    SERVICE,
    lambda: HealthResponse(
        service=SERVICE,
        backend=app.state.backend.name,
        busy=app.state.runner.busy,
        capabilities=app.state.backend.capabilities,
        detail=app.state.backend.detail,
    ),
)
add_cancel_route(app)


@dataclass
class _Drawn:
    images: list[FluxImage]
    rendered: Rendered


@app.post("/generate", response_model=FluxGenerateResponse)
async def generate(body: FluxGenerateRequest, request: Request) -> FluxGenerateResponse:
    started = time.monotonic()
    drawn = await _draw(request, [body], body)
    return FluxGenerateResponse(
        **drawn.images[0].model_dump(),
        backend=request.app.state.backend.name,
        seconds=round(time.monotonic() - started, 3),
        num_inference_steps=drawn.rendered.steps,
        guidance_scale=drawn.rendered.guidance,
    )


@app.post("/generate/batch", response_model=FluxBatchResponse)
async def generate_batch(body: FluxBatchRequest, request: Request) -> FluxBatchResponse:
    started = time.monotonic()
    drawn = await _draw(request, body.images, body)
    return FluxBatchResponse(
        images=drawn.images,
        backend=request.app.state.backend.name,
        seconds=round(time.monotonic() - started, 3),
        num_inference_steps=drawn.rendered.steps,
        guidance_scale=drawn.rendered.guidance,
        pipeline_calls=drawn.rendered.pipeline_calls,
    )


async def _draw(request: Request, specs: Sequence[FluxImageSpec], options: FluxRenderOptions) -> _Drawn:
    state = request.app.state
    # Everything that can be refused is checked before the model is held.
    targets = [_target_path(state.storage, spec.output_path) for spec in specs]
    jobs = [ImageJob(spec.prompt, _seed(spec.seed), spec.view) for spec in specs]
    render = RenderOptions(options.width, options.height, options.num_inference_steps, options.guidance_scale)
    return await state.runner.run(
        _render_and_save, state.backend, jobs, render, targets, options.return_b64,
        job_id=options.job_id, request=request,
    )  # fmt: skip


def _render_and_save(
    backend: ImageGenerator,
    jobs: list[ImageJob],
    options: RenderOptions,
    targets: list[Path],
    return_b64: bool,
) -> _Drawn:
    """Runs in the runner's thread: drawing and PNG encoding both stay off the event loop."""
    rendered = backend.generate_batch(jobs, options)
    if len(rendered.images) != len(jobs):
        raise BackendError(f"{backend.name} drew {len(rendered.images)} images for {len(jobs)} prompts")
    images = []
    for job, image, target in zip(jobs, rendered.images, targets, strict=True):
        png = encode_png(image)
        atomic_write_bytes(target, png, durable=False)  # an intermediate: a rerun draws it again
        b64 = base64.b64encode(png).decode() if return_b64 else None
        images.append(FluxImage(image_path=str(target), image_b64=b64, seed=job.seed))
    return _Drawn(images, rendered)


def _seed(seed: int | None) -> int:
    """The caller's seed, or a fresh one that the answer reports so the image can be drawn again."""
    return random_seed() if seed is None else seed


def _target_path(storage: Storage, output_path: str) -> Path:
    target = storage.inside(storage.inputs, output_path, what="output path")
    if target.suffix.lower() != ".png":
        raise InvalidInput(f'output path "{output_path}" must name a .png file: flux-service writes PNG')
    return target
