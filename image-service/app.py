"""image-service: multi-view prompts → views, uploads/URLs → views, and view normalisation.

POST /imagine/generate    prompt → one image per canonical view (drawn by flux-service replicas)
POST /imagine/from-urls   URLs → downloaded, checked, normalised views
POST /imagine/from-paths  images under inputs/ → normalised views (an extension of the spec's API)
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from image_service.backends.flux_replicas import FluxReplicas
from image_service.downloads import download_client, download_image
from meshforge.errors import InvalidInput
from meshforge.geometry.normalise import normalise_views
from meshforge.geometry.views import view_set
from meshforge.http import ReplicaPool, make_client
from meshforge.schemas import (
    HealthResponse,
    ImagesResult,
    ImagineFromPathsRequest,
    ImagineFromUrlsRequest,
    ImagineGenerateRequest,
)
from meshforge.service import add_health_route, install_error_handlers
from meshforge.settings import get_settings
from meshforge.storage import Storage, atomic_write_bytes

SERVICE = "image-service"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.settings = settings
    app.state.storage = Storage(settings)
    app.state.storage.ensure()
    client = make_client(settings.request_timeout_seconds)
    pool = ReplicaPool(
        "flux-service",
        settings.flux_service_urls,
        client,
        deadline_seconds=settings.stage_timeout_seconds,
        retry_seconds=settings.replica_retry_seconds,
    )
    app.state.generator = FluxReplicas(pool)
    app.state.downloads = download_client()
    yield
    await client.aclose()
    await app.state.downloads.aclose()


app = FastAPI(title=SERVICE, lifespan=lifespan)
install_error_handlers(app)
add_health_route(app, SERVICE, lambda: HealthResponse(service=SERVICE, backend=app.state.generator.name))


def _job_folder(storage: Storage, job_id: str | None) -> Path:
    return storage.job_inputs(job_id or uuid.uuid4().hex)


@app.post("/imagine/generate", response_model=ImagesResult)
async def imagine_generate(body: ImagineGenerateRequest, request: Request) -> ImagesResult:
    started = time.monotonic()
    views = view_set(body.num_views)
    folder = _job_folder(request.app.state.storage, body.job_id)
    paths, backend = await request.app.state.generator.generate(
        body.prompt, views, body.image_size, body.seed, folder / "generated"
    )
    images = [_open(path, str(path)) for path in paths]
    return await _normalised(images, [v.name for v in views], body.image_size, folder, backend, started)


@app.post("/imagine/from-urls", response_model=ImagesResult)
async def imagine_from_urls(body: ImagineFromUrlsRequest, request: Request) -> ImagesResult:
    started = time.monotonic()
    settings = request.app.state.settings
    views = _views_for(len(body.urls))
    images = [
        await download_image(
            request.app.state.downloads,
            str(url),
            max_bytes=settings.download_max_bytes,
            timeout=settings.download_timeout_seconds,
        )
        for url in body.urls
    ]
    folder = _job_folder(request.app.state.storage, body.job_id)
    return await _normalised(images, views, body.image_size, folder, "url-download", started)


@app.post("/imagine/from-paths", response_model=ImagesResult)
async def imagine_from_paths(body: ImagineFromPathsRequest, request: Request) -> ImagesResult:
    started = time.monotonic()
    storage: Storage = request.app.state.storage
    views = _views_for(len(body.image_paths))
    images = [_open(storage.input_image(path), path) for path in body.image_paths]
    folder = _job_folder(storage, body.job_id)
    return await _normalised(images, views, body.image_size, folder, "uploaded-images", started)


def _views_for(count: int) -> list[str]:
    try:
        return [view.name for view in view_set(count)]
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _open(path: Path, shown: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise InvalidInput(f'image "{shown}" does not exist') from None
    except (UnidentifiedImageError, OSError):
        raise InvalidInput(f'"{shown}" could not be read as an image') from None
    return image


async def _normalised(
    images: list[Image.Image], views: list[str], size: int, folder: Path, source: str, started: float
) -> ImagesResult:
    normalised = await run_in_threadpool(normalise_views, images, size)
    paths = []
    for index, (rgba, view) in enumerate(zip(normalised, views, strict=True)):
        target = folder / "views" / f"{index:02d}-{view}.png"
        atomic_write_bytes(target, _png(rgba))
        paths.append(str(target))
    return ImagesResult(
        image_paths=paths,
        views=views,
        backend=source,
        seconds=round(time.monotonic() - started, 3),
        detail={"normalisation": "alpha-or-border-flood-fill matte, joint scale", "image_size": size},
    )


def _png(rgba: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()
