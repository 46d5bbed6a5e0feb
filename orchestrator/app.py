"""The orchestrator's public API app: `uvicorn orchestrator.app:app` or `python -m orchestrator`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshforge.errors import StageUnavailable
from meshforge.http import ReplicaPool, make_client
from meshforge.internal_token import require_internal_token
from meshforge.service import error_response, service_app
from meshforge.settings import OrchestratorSettings, load_settings
from meshforge.storage import Storage
from orchestrator import event_stream, file_routes
from orchestrator.auth import load_keys
from orchestrator.conversions import conversions
from orchestrator.events import JobEvents
from orchestrator.idempotency import IdempotencyKeys
from orchestrator.jobs import JobStore
from orchestrator.metrics import api_metrics, refresh_queue_gauges
from orchestrator.quotas import Quotas
from orchestrator.routes import router
from orchestrator.stages import replica_urls

log = logging.getLogger("orchestrator")
REDIS_RETRY_AFTER = 2  # seconds: Redis restarting from its append-only file is back within a few

DESCRIPTION = """Prompt or images → 3D asset (GLB, OBJ, FBX).

Create a job with `POST /3d/generate` or `POST /3d/from-image`, follow it with `GET /3d/status/{job_id}`
(add `?wait=30` to wait for the end), then fetch the file with `GET /3d/download/{job_id}`.

When the server has API keys configured, every `/3d/*` call needs `Authorization: Bearer <key>` (401
otherwise); a key sees and acts on its own jobs and uploads (403 for others'), within its quotas (429
with `Retry-After`). A full queue answers 503 with `Retry-After`.
"""


def create_app(settings: OrchestratorSettings | None = None) -> FastAPI:
    settings = settings or load_settings(OrchestratorSettings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = Storage(settings)
        storage.ensure()
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        client = make_client(5.0, settings.internal_token)  # the stages' /health, with the fleet token
        app.state.settings = settings
        app.state.storage = storage
        app.state.redis = redis
        app.state.jobs = JobStore(redis)
        app.state.events = JobEvents(redis)  # one pub/sub connection for every ?wait= request
        app.state.keys = load_keys(settings)  # API keys: off unless configured (orchestrator/auth.py)
        app.state.quotas = Quotas(redis, settings.max_queued_jobs)
        app.state.idempotency = IdempotencyKeys(redis, settings.idempotency_seconds)
        # Every stage's replicas and flux-service's (which image-service calls), for /health.
        replicas = {**replica_urls(settings), "flux-service": settings.flux_service_urls}
        app.state.pools = {name: ReplicaPool(name, urls, client) for name, urls in replicas.items()}
        # Downloads in another format (orchestrator/conversions.py), with a client of their own.
        async with conversions(app.state.pools["postprocess-service"].urls, storage, settings) as found:
            app.state.conversions = found
            yield
        await app.state.events.aclose()
        await client.aclose()
        await redis.aclose()

    api_metrics()  # the orchestrator's job metrics (orchestrator/metrics.py), exported from the start
    app = service_app(
        "meshforge",
        service="orchestrator",
        before_scrape=refresh_queue_gauges,  # queue depth and in-flight jobs, read from Redis
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    # The API is public; its /metrics is for the fleet's Prometheus only (docs/security.md).
    require_internal_token(app, "orchestrator", settings.internal_token, only=frozenset({"/metrics"}))
    app.include_router(router)
    app.include_router(event_stream.router)
    app.include_router(file_routes.router)
    app.add_exception_handler(RedisConnectionError, _redis_unreachable)
    app.add_exception_handler(RedisTimeoutError, _redis_unreachable)
    return app


async def _redis_unreachable(_: Request, exc: Exception) -> JSONResponse:
    """Redis restarting is an outage, not a bug: callers get a 503 they can retry, never a 500."""
    log.warning("Redis unreachable: %s", exc)
    message = "the job database is unreachable for a moment; try again shortly"
    return error_response(503, StageUnavailable.code, message, {"Retry-After": str(REDIS_RETRY_AFTER)})


app = create_app()
