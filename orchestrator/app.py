"""The orchestrator's public API app: `uvicorn orchestrator.app:app` or `python -m orchestrator`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from meshforge.http import ReplicaPool, make_client
from meshforge.service import service_app
from meshforge.settings import Settings, get_settings
from meshforge.storage import Storage
from orchestrator.jobs import JobStore
from orchestrator.routes import router

DESCRIPTION = """Prompt or images → 3D asset (GLB, OBJ, FBX).

Create a job with `POST /3d/generate` or `POST /3d/from-image`, follow it with `GET /3d/status/{job_id}`
(add `?wait=30` to wait for the end), then fetch the file with `GET /3d/download/{job_id}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = Storage(settings)
        storage.ensure()
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        client = make_client(5.0)
        app.state.settings = settings
        app.state.storage = storage
        app.state.redis = redis
        app.state.jobs = JobStore(redis)
        app.state.pools = {
            name: ReplicaPool(name, urls, client)
            for name, urls in (
                ("image-service", settings.image_service_urls),
                ("flux-service", settings.flux_service_urls),
                ("reconstruction-service", settings.reconstruction_service_urls),
                ("postprocess-service", settings.postprocess_service_urls),
            )
        }
        yield
        await client.aclose()
        await redis.aclose()

    app = service_app("meshforge", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.include_router(router)
    return app


app = create_app()
