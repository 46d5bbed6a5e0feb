"""The public API. Thin: validation lives in the schemas, state in JobStore, errors in meshforge.errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Query, Request, Response, UploadFile

from meshforge.outbound import precheck_url
from meshforge.schemas import (
    FromImageRequest,
    GenerateRequest,
    HealthResponse,
    JobCreated,
    JobId,
    JobList,
    JobOptions,
    JobState,
    JobStatus,
    UploadResponse,
    random_seed,
)
from meshforge.service import documented_errors as errors
from orchestrator.auth import (
    Caller,
    CallerDep,
    InternalsDep,
    check_job_access,
    check_upload_access,
    record_upload,
)
from orchestrator.events import JobEvents
from orchestrator.idempotency import IdempotencyKeys, fingerprint
from orchestrator.jobs import JobStore, new_job_id
from orchestrator.metrics import CANCELLED, JOBS_FINISHED, api_metrics
from orchestrator.quotas import Quotas
from orchestrator.uploads import check_image_paths, check_view_count, store_uploads
from orchestrator.webhooks import check_webhook_url

router = APIRouter()

MAX_WAIT_SECONDS = 120.0
MAX_OFFSET = 1_000_000_000  # Redis range indexes are 64-bit: a larger offset was a 500 (found by fuzzing)


def _store(request: Request) -> JobStore:
    store: JobStore = request.app.state.jobs
    return store


def _fix_seed(body: JobOptions) -> None:
    """A job without a seed gets one, recorded in its request, so any job can be reproduced."""
    if body.seed is None:
        body.seed = random_seed()


def _created(job_id: str) -> JobCreated:
    return JobCreated(job_id=job_id, status_url=f"/3d/status/{job_id}")


async def _create(
    request: Request, caller: Caller, kind: str, body: dict[str, Any], job_id: str | None = None
) -> str:
    """Admit the job under the caller's quotas and the queue cap, then record and queue it."""
    job_id = job_id or new_job_id()
    quotas: Quotas = request.app.state.quotas
    await quotas.admit_job(caller, job_id)
    created = await _store(request).create(kind, body, api_key=caller.name, job_id=job_id)
    api_metrics().submitted.labels(kind).inc()
    return created


async def _submit(
    request: Request,
    response: Response,
    caller: Caller,
    kind: str,
    body: JobOptions,
    idempotency_key: str | None,
    **dump: Any,
) -> JobCreated:
    """Create the job, or, for an Idempotency-Key seen before with the same request, answer its first
    job again (orchestrator/idempotency.py)."""
    if body.webhook_url is not None:
        check_webhook_url(body.webhook_url, request.app.state.settings)
    else:
        dump.setdefault("exclude", {"webhook_url"})  # the record's request shows only what was used
    if idempotency_key is None:
        _fix_seed(body)
        return _created(await _create(request, caller, kind, body.model_dump(mode="json", **dump)))
    digest = fingerprint(kind, body.model_dump(mode="json", **dump))  # before the server picks a seed
    _fix_seed(body)
    keys: IdempotencyKeys = request.app.state.idempotency
    job_id = new_job_id()
    job_id, replayed = await keys.submit(
        caller.name,
        idempotency_key,
        digest,
        job_id,
        lambda: _create(request, caller, kind, body.model_dump(mode="json", **dump), job_id),
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _created(job_id)


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "Any printable ASCII string of your choosing, unique per job you mean to make: sending the "
            "same request again with the same key (e.g. after a timeout) answers the first job instead "
            "of making a second, for 24 h; the same key with a different request is a 409"
        ),
    ),
]


@router.post("/3d/generate", response_model=JobCreated, tags=["jobs"], responses=errors(401, 409, 429))
async def generate(
    body: GenerateRequest,
    request: Request,
    response: Response,
    caller: CallerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobCreated:
    """Prompt → 3D asset. Returns at once; follow `status_url`."""
    return await _submit(request, response, caller, "prompt", body, idempotency_key)


@router.post("/3d/from-image", response_model=JobCreated, tags=["jobs"], responses=errors(401, 403, 409, 429))
async def from_image(
    body: FromImageRequest,
    request: Request,
    response: Response,
    caller: CallerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JobCreated:
    """Image(s) → 3D asset: 1, 4 or 8 views in the canonical order, as URLs or as paths under inputs/."""
    if body.image_paths is not None:
        check_image_paths(request.app.state.storage, body.image_paths)
        await check_upload_access(request.app.state.redis, caller, body.image_paths)
    else:
        check_view_count(len(body.image_urls or []))
        allowed = request.app.state.settings.outbound_allowed_networks
        for url in body.image_urls or []:  # refused now where no network is needed to know (SSRF)
            precheck_url(str(url), allowed)
    return await _submit(request, response, caller, "images", body, idempotency_key, exclude_none=True)


@router.post(
    "/3d/upload",
    response_model=UploadResponse,
    status_code=201,
    tags=["jobs"],
    responses=errors(401, 413, 429),
)
async def upload(
    request: Request, files: Annotated[list[UploadFile], File()], caller: CallerDep
) -> UploadResponse:
    """Store images under inputs/; pass the returned paths as `image_paths` to `/3d/from-image`."""
    settings = request.app.state.settings
    await request.app.state.quotas.admit_upload(caller, new_job_id())
    paths = await store_uploads(
        request.app.state.storage, files, settings.max_upload_bytes, settings.max_images
    )
    await record_upload(request.app.state.redis, caller, paths)
    return UploadResponse(image_paths=paths)


@router.get("/3d/status/{job_id}", response_model=JobStatus, tags=["jobs"], responses=errors(401, 403, 404))
async def status(
    job_id: JobId,
    request: Request,
    caller: CallerDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Wait up to this many seconds for the job to finish before answering",
        ),
    ] = 0,
) -> JobStatus:
    store = _store(request)
    await check_job_access(store, caller, job_id)
    if wait <= 0:
        return await store.get(job_id)
    # Woken by the job's end event, not by polling (orchestrator/events.py).
    events: JobEvents = request.app.state.events
    return await events.wait_for_end(job_id, wait, lambda: store.get(job_id))


@router.get("/3d/jobs", response_model=JobList, tags=["jobs"], responses=errors(401))
async def list_jobs(
    request: Request,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    state: JobState | None = None,
) -> JobList:
    """Recent jobs, newest first: the caller's own, or every job for an admin key (or with keys off)."""
    api_key = None if caller.sees_everything else caller.name
    jobs, total = await _store(request).list(offset, limit, state, api_key)
    return JobList(jobs=jobs, total=total, offset=offset, limit=limit)


@router.post(
    "/3d/cancel/{job_id}", response_model=JobStatus, tags=["jobs"], responses=errors(401, 403, 404, 409)
)
async def cancel(job_id: JobId, request: Request, caller: CallerDep) -> JobStatus:
    """Cancel a queued or running job; finished jobs answer 409."""
    store = _store(request)
    await check_job_access(store, caller, job_id)
    await store.cancel(job_id)
    # The cancel script just ended the job: this process counts it (orchestrator/metrics.py).
    JOBS_FINISHED.labels(JobState.cancelled.value, CANCELLED).inc()
    return await store.get(job_id)


@router.get("/health", response_model=HealthResponse, tags=["health"])
async def health(request: Request, internals: InternalsDep) -> HealthResponse:
    """The orchestrator, Redis, and every stage replica as it reports itself. With API keys on, only
    an admin key sees the details (replica URLs); anyone else gets the status alone."""
    redis_ok = True
    try:
        await request.app.state.redis.ping()
    except Exception:
        redis_ok = False
    stages = {name: await pool.health() for name, pool in request.app.state.pools.items()}
    healthy = redis_ok and all(
        r.get("status") == "ok" for replicas in stages.values() for r in replicas.values()
    )
    if not internals:
        return HealthResponse(service="orchestrator", status="ok" if healthy else "degraded")
    return HealthResponse(
        service="orchestrator",
        status="ok" if healthy else "degraded",
        detail={"redis": "ok" if redis_ok else "unreachable", "stages": stages},
    )
