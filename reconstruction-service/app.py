"""reconstruction-service: normalised views → mesh, one job at a time per process (one per GPU).

POST /reconstruct/mesh: image_paths (+ their canonical view names), output_format → mesh_path.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from fastapi import FastAPI, Request
from PIL import Image, UnidentifiedImageError

from meshforge.cancellation import add_cancel_route
from meshforge.errors import InvalidInput, UnsupportedFormat
from meshforge.geometry.views import VIEWS_BY_NAME, CanonicalView, view_set
from meshforge.internal_token import require_internal_token
from meshforge.schemas import HealthResponse
from meshforge.service import (
    ExclusiveRunner,
    add_health_route,
    service_app,
    start_backend,
)
from meshforge.settings import ReconstructionSettings, load_settings
from meshforge.stage_schemas import ReconstructRequest, ReconstructResponse
from meshforge.storage import Storage, atomic_write_bytes
from reconstruction_service.backends import load_backend
from reconstruction_service.backends.base import DrawsViews, Reconstructor

SERVICE = "reconstruction-service"
MESH_FORMATS = ("glb", "obj", "ply")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = load_settings(ReconstructionSettings)
    app.state.storage = Storage(settings)
    app.state.storage.ensure()
    app.state.backend = start_backend(SERVICE, lambda: load_backend(settings))
    app.state.runner = ExclusiveRunner(SERVICE, retry_after=2.0)
    yield


app = service_app(SERVICE, lifespan=lifespan)
require_internal_token(app, SERVICE, load_settings(ReconstructionSettings).internal_token)
add_health_route(
    app,
    SERVICE,
    lambda: HealthResponse(
        service=SERVICE,
        backend=app.state.backend.name,
        busy=app.state.runner.busy,
        capabilities=app.state.backend.capabilities,
    ),
)
add_cancel_route(app)


@app.post("/reconstruct/mesh", response_model=ReconstructResponse)
async def reconstruct_mesh(body: ReconstructRequest, request: Request) -> ReconstructResponse:
    state = request.app.state
    storage: Storage = state.storage
    if body.output_format not in MESH_FORMATS:
        raise UnsupportedFormat(
            f'reconstruction writes {", ".join(MESH_FORMATS)}, not "{body.output_format}"'
        )
    views = _views(body)
    # Views come from the image stage (inputs/) or a cache; the mesh goes to cache/ only.
    paths = [storage.shared_file(path, (storage.inputs, storage.cache)) for path in body.image_paths]
    target = _target(storage, body)
    folder = _generated_folder(storage, body, target)
    started = time.monotonic()
    mesh, detail = await state.runner.run(
        _run,
        state.backend,
        paths,
        views,
        body.resolution,
        target,
        folder,
        job_id=body.job_id,
        request=request,
    )
    return ReconstructResponse(
        mesh_path=str(target),
        backend=state.backend.name,
        vertices=len(mesh.vertices),
        faces=len(mesh.faces),
        seconds=round(time.monotonic() - started, 3),
        detail=detail,
    )


def _run(
    backend: Reconstructor,
    paths: list[Path],
    views: list[CanonicalView],
    resolution: int,
    target: Path,
    folder: Path,
) -> tuple[trimesh.Trimesh, dict[str, Any]]:
    images = [_load_rgba(path) for path in paths]
    if isinstance(backend, DrawsViews):
        mesh, detail = backend.reconstruct_keeping_views(images, views, resolution, folder)
    else:
        mesh, detail = backend.reconstruct(images, views, resolution)
    encoded = mesh.export(file_type=target.suffix.lstrip("."))
    atomic_write_bytes(target, encoded if isinstance(encoded, bytes) else str(encoded).encode())
    return mesh, detail


def _views(body: ReconstructRequest) -> list[CanonicalView]:
    if body.views is None:
        try:
            return list(view_set(len(body.image_paths)))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    if len(body.views) != len(body.image_paths):
        raise InvalidInput(f"{len(body.image_paths)} images but {len(body.views)} view names")
    unknown = [name for name in body.views if name not in VIEWS_BY_NAME]
    if unknown:
        raise InvalidInput(f"unknown view names {unknown}: use {', '.join(VIEWS_BY_NAME)}")
    return [VIEWS_BY_NAME[name] for name in body.views]


def _target(storage: Storage, body: ReconstructRequest) -> Path:
    path = storage.shared_file(body.output_path, (storage.cache,))
    return path.with_suffix(f".{body.output_format}")


def _generated_folder(storage: Storage, body: ReconstructRequest, target: Path) -> Path:
    """Where a backend that draws views of its own keeps them: beside the image stage's in the job's
    folder (inputs/jobs/<id>/generated/, listed in the job's record), or beside the mesh without a job."""
    if body.job_id is not None:
        return storage.job_inputs(body.job_id) / "generated"
    return target.with_name(f"{target.stem}-generated")


def _load_rgba(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGBA"))
    except (UnidentifiedImageError, OSError):
        raise InvalidInput(f'"{path.name}" could not be read as an image') from None
