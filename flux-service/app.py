"""flux-service: one text-to-image model per process (one per GPU), kept hot.

POST /generate: prompt, width, height, optional seed → image_path (PNG under inputs/) and image_b64.
One request at a time; a second one gets 503 with Retry-After so the caller tries another replica.
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from PIL import Image

from flux_service.backends import load_backend
from meshforge.schemas import FluxGenerateRequest, FluxGenerateResponse, HealthResponse
from meshforge.service import ExclusiveRunner, add_health_route, install_error_handlers
from meshforge.settings import get_settings
from meshforge.storage import Storage, atomic_write_bytes

SERVICE = "flux-service"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.storage = Storage(settings)
    app.state.storage.ensure()
    app.state.backend = load_backend(settings.flux_backend)
    app.state.runner = ExclusiveRunner(SERVICE)
    yield


app = FastAPI(title=SERVICE, lifespan=lifespan)
install_error_handlers(app)
add_health_route(
    app,
    SERVICE,
    lambda: HealthResponse(service=SERVICE, backend=app.state.backend.name, busy=app.state.runner.busy),
)


@app.post("/generate", response_model=FluxGenerateResponse)
async def generate(body: FluxGenerateRequest, request: Request) -> FluxGenerateResponse:
    state = request.app.state
    started = time.monotonic()
    image: Image.Image = await state.runner.run(
        state.backend.generate, body.prompt, body.width, body.height, body.seed, body.view
    )
    png = _png_bytes(image)
    target = _target_path(state.storage, body.output_path)
    atomic_write_bytes(target, png)
    return FluxGenerateResponse(
        image_path=str(target),
        image_b64=base64.b64encode(png).decode() if body.return_b64 else None,
        backend=state.backend.name,
        seconds=round(time.monotonic() - started, 3),
    )


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _target_path(storage: Storage, output_path: str | None) -> Path:
    if output_path is None:
        return storage.inputs / "generated" / f"{uuid.uuid4().hex}.png"
    return storage.inside(storage.inputs, output_path, what="output path")
