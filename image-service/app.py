"""image-service: multi-view prompts → views, uploads/URLs → views, and view normalisation.

POST /imagine/generate    prompt → one image per canonical view (drawn by flux-service replicas)
POST /imagine/from-urls   URLs → downloaded, checked, normalised views
POST /imagine/from-paths  images under inputs/ → normalised views (an extension of the spec's API)

Every view is normalised the same way (meshforge.geometry.normalise) with the configured matting
backend (image_service.matting), which each result names in its detail, as does /health.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from image_service.backends.flux_replicas import FluxReplicas
from image_service.consistency import draw_views
from image_service.downloads import DownloadLimits, decode_downloaded, download_client, fetch_images
from image_service.matting import Matting, load_matting
from image_service.view_agreement import silhouette_of, view_agreement
from meshforge.cancellation import add_cancel_route, await_cancellable
from meshforge.errors import InvalidInput
from meshforge.geometry.normalise import normalise_views, working_side
from meshforge.geometry.views import VIEWS_BY_NAME, view_set
from meshforge.http import ReplicaPool, make_client
from meshforge.images import ImageLimits, decode_image, encode_png, shown_name
from meshforge.internal_token import require_internal_token
from meshforge.logging import work_span
from meshforge.outbound import redact
from meshforge.schemas import HealthResponse
from meshforge.service import add_health_route, service_app, start_backend
from meshforge.settings import ImageSettings, load_settings
from meshforge.stage_schemas import (
    ImagesResult,
    ImagineFromPathsRequest,
    ImagineFromUrlsRequest,
    ImagineGenerateRequest,
)
from meshforge.storage import Storage, atomic_write_bytes

SERVICE = "image-service"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings(ImageSettings)
    app.state.settings = settings
    app.state.storage = Storage(settings)
    app.state.storage.ensure()
    client = make_client(settings.request_timeout_seconds, settings.internal_token)
    pool = ReplicaPool(
        "flux-service",
        settings.flux_service_urls,
        client,
        deadline_seconds=settings.stage_timeout_seconds,
        retry_seconds=settings.replica_retry_seconds,
    )
    app.state.generator = FluxReplicas(pool)
    app.state.matting = start_backend(SERVICE, lambda: load_matting(settings))  # a missing model stops here
    app.state.downloads = download_client()
    # Decoding and normalising hold images in memory: at most this many jobs do it at once, more wait.
    app.state.image_work = asyncio.Semaphore(settings.image_work_concurrency)
    yield
    await client.aclose()
    await app.state.downloads.aclose()


app = service_app(SERVICE, lifespan=lifespan)
require_internal_token(app, SERVICE, load_settings(ImageSettings).internal_token)
add_health_route(
    app,
    SERVICE,
    lambda: HealthResponse(
        service=SERVICE,
        backend=app.state.generator.name,
        detail={"matting": app.state.matting.name, **app.state.matting.detail},
    ),
)


def _output_folder(storage: Storage, output_dir: str) -> Path:
    """The job's folder the dispatcher chose; it must lie inside inputs/, symbolic links followed."""
    return storage.inside(storage.inputs, output_dir, what="output folder")


def _cancellable(route: Callable[[Any, Request], Coroutine[Any, Any, ImagesResult]]) -> Callable[..., Any]:
    """Run a route as the job's cancellable work: its cancel (or the caller hanging up) cancels the
    route's task, and with it the flux calls it has in flight."""

    @functools.wraps(route)
    async def run(body: Any, request: Request) -> ImagesResult:
        with work_span(body.job_id, SERVICE):
            return await await_cancellable(route(body, request), job_id=body.job_id, request=request)

    return run


# The cancel reaches this service's task of the job and, forwarded, the flux replicas' work on it; its
# progress adds what the flux replicas drawing its views have done so far.
add_cancel_route(
    app,
    forward=lambda job_id: app.state.generator.cancel(job_id),
    progress=lambda job_id, answer: app.state.generator.progress(job_id, answer),
)


@app.post("/imagine/generate", response_model=ImagesResult)
@_cancellable
async def imagine_generate(body: ImagineGenerateRequest, request: Request) -> ImagesResult:
    started = time.monotonic()
    state = request.app.state
    views = view_set(body.num_views)
    strategy = body.consistency or state.settings.tier(body.quality_tier).consistency
    folder = _output_folder(state.storage, body.output_dir)
    drawn = await draw_views(
        state.generator, body.prompt, views, body.image_size, body.seed, strategy, folder / "generated"
    )
    # A model places the object where it likes in each view (or sheet cell): centre each view on it.
    result = await _normalised(
        request, drawn.images, [v.name for v in views], body.image_size, folder, drawn.backend, started,
        centre_each=not drawn.posed,
    )  # fmt: skip
    result.detail.update(drawn.detail, quality_tier=body.quality_tier.value)
    return result


@app.post("/imagine/from-urls", response_model=ImagesResult)
@_cancellable
async def imagine_from_urls(body: ImagineFromUrlsRequest, request: Request) -> ImagesResult:
    started = time.monotonic()
    state = request.app.state
    views = _views_for(len(body.urls))
    limits = DownloadLimits.from_settings(state.settings)
    urls = [str(url) for url in body.urls]
    folder = _output_folder(state.storage, body.output_dir)  # refused before anything is fetched
    fetched = await fetch_images(state.downloads, urls, limits)
    side = working_side(body.image_size)

    def images() -> list[Image.Image]:  # decoded inside the bounded work, reduced on load
        return [
            decode_downloaded(data, shown=redact(url), fit_side=side)
            for data, url in zip(fetched, urls, strict=True)
        ]

    return await _normalised(request, images, views, body.image_size, folder, "url-download", started)


@app.post("/imagine/from-paths", response_model=ImagesResult)
@_cancellable
async def imagine_from_paths(body: ImagineFromPathsRequest, request: Request) -> ImagesResult:
    started = time.monotonic()
    storage: Storage = request.app.state.storage
    views = _views_for(len(body.image_paths))
    limits = ImageLimits.from_settings(request.app.state.settings)
    side = working_side(body.image_size)
    files = [(storage.input_image(path), path) for path in body.image_paths]

    def images() -> list[Image.Image]:  # decoded inside the bounded work, reduced on load
        return [_open(file, shown, limits, side) for file, shown in files]

    folder = _output_folder(storage, body.output_dir)
    return await _normalised(request, images, views, body.image_size, folder, "uploaded-images", started)


def _views_for(count: int) -> list[str]:
    try:
        return [view.name for view in view_set(count)]
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _open(path: Path, shown: str, limits: ImageLimits, fit_side: int) -> Image.Image:
    """The checked image (meshforge.images: ImageRejected names the file and the reason)."""
    try:
        return decode_image(path, shown, limits, fit_side=fit_side)
    except FileNotFoundError:
        raise InvalidInput(f'image "{shown_name(shown)}" does not exist') from None
    except OSError:  # a folder, no permission: not something an upload could have made
        raise InvalidInput(f'"{shown_name(shown)}" could not be read as an image') from None


async def _normalised(
    request: Request,
    images: list[Image.Image] | Callable[[], list[Image.Image]],
    views: list[str],
    size: int,
    folder: Path,
    source: str,
    started: float,
    *,
    centre_each: bool = False,
) -> ImagesResult:
    matting: Matting = request.app.state.matting
    ratio = request.app.state.settings.foreground_ratio

    def work() -> tuple[list[np.ndarray], dict[str, object]]:
        loaded = images() if callable(images) else images
        views_out = normalise_views(
            loaded, size, matting=matting, foreground_ratio=ratio, centre_each=centre_each
        )
        return views_out, _agreement(views_out, views)

    async with request.app.state.image_work:  # MESHFORGE_IMAGE_WORK_CONCURRENCY bounds the memory used
        normalised, agreement = await run_in_threadpool(work)
    paths = []
    for index, (rgba, view) in enumerate(zip(normalised, views, strict=True)):
        target = folder / "views" / f"{index:02d}-{view}.png"
        atomic_write_bytes(target, encode_png(Image.fromarray(rgba, mode="RGBA")), durable=False)
        paths.append(str(target))
    return ImagesResult(
        image_paths=paths,
        views=views,
        backend=source,
        seconds=round(time.monotonic() - started, 3),
        detail={
            "matting": matting.name,
            **matting.detail,
            "normalisation": {
                "image_size": size,
                "foreground_ratio": ratio,
                "placement": "each view centred on its object" if centre_each else "canonical frame kept",
            },
            **agreement,
        },
    )


def _agreement(normalised: list[np.ndarray], views: list[str]) -> dict[str, object]:
    """Silhouette agreement of a multi-view set (docs/images.md): 1.0 when the views show one object."""
    if len(views) < 2:
        return {}
    score = view_agreement(
        [silhouette_of(rgba) for rgba in normalised], tuple(VIEWS_BY_NAME[v] for v in views)
    )
    return {"view_agreement": score.as_detail()}
