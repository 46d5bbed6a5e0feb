"""What every meshforge FastAPI app shares: error mapping, health, and the one-job-at-a-time guard."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from meshforge.cancellation import run_cancellable
from meshforge.errors import MeshforgeError, RetryLater, ServiceBusy, StorageFull
from meshforge.logging import configure_logging, work_span
from meshforge.metrics import HttpMetricsMiddleware, Scrape, add_metrics_route, backend_loaded
from meshforge.request_id import RequestIdMiddleware, internal_error_body, request_id_of
from meshforge.schemas import ErrorResponse, HealthResponse
from meshforge.settings import CommonSettings
from meshforge.storage import NO_SPACE_ERRNOS, disk_full_message

R = TypeVar("R")
log = logging.getLogger(__name__)


ERROR_MEANINGS = {
    400: "The body could not be parsed",
    401: "An API key is needed (Authorization: Bearer <key>) or the one sent is not valid",
    403: "The job or upload belongs to another API key",
    404: "Not found",
    409: "Not in a state that allows this",
    413: "Too large",
    422: "The request is invalid; detail says why",
    429: "A per-key quota is used up: try again after Retry-After seconds",
    503: "Busy or unavailable: try again (Retry-After) or another replica",
    507: "No space left on the server's storage: try again later",
}


def documented_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers, all shaped as ErrorResponse, to pass as ``responses=``."""
    return {code: {"model": ErrorResponse, "description": ERROR_MEANINGS[code]} for code in codes}


def service_app(
    title: str,
    *,
    service: str | None = None,
    before_scrape: Scrape | None = None,
    **kwargs: Any,
) -> FastAPI:
    """A FastAPI app whose OpenAPI says what every route's errors look like (FastAPI's own 422 schema
    is replaced by ours), with the error handlers that make it true, and Prometheus metrics: every
    answer counted by route template and status, served at ``GET /metrics`` (meshforge/metrics.py).
    ``service`` names the process in the metrics (default: ``title``); ``before_scrape`` refreshes the
    gauges it reads at scrape time."""
    app = FastAPI(title=title, responses=documented_errors(400, 422, 503, 507), **kwargs)
    install_error_handlers(app)
    add_metrics_route(app, before_scrape)
    app.add_middleware(HttpMetricsMiddleware, service=service or title)
    app.add_middleware(RequestIdMiddleware)  # keep it the outermost: every answer gets X-Request-ID
    return app


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """Pydantic's error list as one sentence a person can act on."""
    parts = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "missing":
            message = "this field is required" if location else "the request needs a JSON body"
        elif error.get("type") == "model_attributes_type" and not location:
            message = "the request body must be a JSON object, sent as Content-Type: application/json"
        elif error.get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        elif error.get("type") == "too_long" and "max_length" in error.get("ctx", {}):
            message = f"give at most {error['ctx']['max_length']} items"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "the request is invalid"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    # A lone surrogate echoed from the input (JSON allows "\ud800") cannot be encoded as UTF-8.
    message = message.encode("utf-8", "replace").decode()
    return JSONResponse({"detail": message, "code": code}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """The one place where errors become HTTP responses: {"detail": message, "code": code}."""

    @app.exception_handler(MeshforgeError)
    async def _meshforge_error(_: Request, exc: MeshforgeError) -> JSONResponse:
        headers = dict(exc.headers)
        if isinstance(exc, RetryLater):  # busy, rate-limited, queue full
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return error_response(exc.status_code, exc.code, exc.message, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = describe_validation_errors(list(exc.errors()))
        return error_response(422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, "http_error", str(exc.detail), headers)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        # A full disk anywhere a service writes is the typed StorageFull (507), not an internal error.
        if exc.errno in NO_SPACE_ERRNOS:
            name = PurePath(str(exc.filename)).name if exc.filename else "a file"
            full = StorageFull(disk_full_message(name))
            return error_response(full.status_code, full.code, full.message)
        raise exc

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # RequestIdMiddleware answers (and logs) first; this is the net for errors raised outside it.
        request_id = request_id_of(request.scope)
        log.exception("unexpected error (request id %s)", request_id)
        return JSONResponse(internal_error_body(request_id), status_code=500)


class ExclusiveRunner:
    """Runs blocking work one job at a time, off the event loop; a second job gets ServiceBusy (503).

    GPU-bound services hold one model per GPU: queueing inside the process would hide the replica's
    load from the orchestrator, which instead tries another replica or comes back later.
    """

    def __init__(self, service: str, retry_after: float = 1.0) -> None:
        self._service = service
        self._lock = asyncio.Lock()
        self._retry_after = retry_after

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def run(
        self, func: Callable[..., R], *args: Any, job_id: str | None = None, request: Request | None = None
    ) -> R:
        """Run ``func(*args)`` as cancellable work of ``job_id`` (meshforge.cancellation): cancelling the
        job, or the caller hanging up (``request``), stops it at its next safe point, and the replica is
        free again as soon as the work has stopped."""
        if self._lock.locked():
            raise ServiceBusy(f"{self._service} is busy with another job", retry_after=self._retry_after)
        async with self._lock:
            with work_span(job_id, self._service):
                return await run_cancellable(func, *args, job_id=job_id, request=request)


class _RefusedStart(logging.Filter):
    """Set once start_backend has said why the service cannot start: uvicorn would then log the
    lifespan's traceback, which only repeats that sentence, so its traceback lines are dropped."""

    refused = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.refused and str(record.msg).lstrip().startswith("Traceback"))


_REFUSED_START = _RefusedStart()


def start_backend(service: str, load: Callable[[], R]) -> R:
    """Load a service's backend at start-up. A MeshforgeError (a missing model, an unknown backend) is
    logged as one plain sentence before start-up fails (exit code 3), instead of a traceback a person
    must read."""
    try:
        backend = load()
    except MeshforgeError as error:
        logging.getLogger(service).error("%s cannot start: %s", service, error.message)
        _REFUSED_START.refused = True
        raise
    backend_loaded(service, str(getattr(backend, "name", type(backend).__name__)))  # meshforge_backend_loaded
    return backend


def add_health_route(
    app: FastAPI, service: str, describe: Callable[[], HealthResponse] | None = None
) -> None:
    @app.get("/health", response_model=HealthResponse, tags=["health"])
    async def health() -> HealthResponse:
        return describe() if describe is not None else HealthResponse(service=service)


def serve(app_path: str, service: str, settings: CommonSettings, port: int) -> None:
    """Run one service process on ``settings.host:port``; the CLI entry of every `python -m <service>`."""
    configure_logging(service, settings.log_level, settings.log_format)
    logging.getLogger("uvicorn.error").addFilter(_REFUSED_START)
    # log_config=None: uvicorn's own lines go through the root handler, in MESHFORGE_LOG_FORMAT too.
    uvicorn.run(
        app_path,
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
    )
