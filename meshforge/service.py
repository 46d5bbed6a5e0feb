"""What every meshforge FastAPI app shares: error mapping, health, and the one-job-at-a-time guard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from meshforge.errors import MeshforgeError, ServiceBusy
from meshforge.logging import configure_logging
from meshforge.schemas import ErrorResponse, HealthResponse

R = TypeVar("R")
log = logging.getLogger(__name__)


ERROR_MEANINGS = {
    400: "The body could not be parsed",
    404: "Not found",
    409: "Not in a state that allows this",
    413: "Too large",
    422: "The request is invalid; detail says why",
    503: "Busy or unavailable: try again (Retry-After) or another replica",
}


def documented_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers, all shaped as ErrorResponse, to pass as ``responses=``."""
    return {code: {"model": ErrorResponse, "description": ERROR_MEANINGS[code]} for code in codes}


def service_app(title: str, **kwargs: Any) -> FastAPI:
    """A FastAPI app whose OpenAPI says what every route's errors look like (FastAPI's own 422 schema
    is replaced by ours), with the error handlers that make it true."""
    app = FastAPI(title=title, responses=documented_errors(400, 422, 503), **kwargs)
    install_error_handlers(app)
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
            message = "the request body must be a JSON object"
        elif error.get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "the request is invalid"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": message, "code": code}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """The one place where errors become HTTP responses: {"detail": message, "code": code}."""

    @app.exception_handler(MeshforgeError)
    async def _meshforge_error(_: Request, exc: MeshforgeError) -> JSONResponse:
        headers = (
            {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, ServiceBusy) else None
        )
        return error_response(exc.status_code, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message = describe_validation_errors(list(exc.errors()))
        return error_response(422, "invalid_request", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}: {exc}")


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

    async def run(self, func: Callable[..., R], *args: Any) -> R:
        if self._lock.locked():
            raise ServiceBusy(f"{self._service} is busy with another job", retry_after=self._retry_after)
        async with self._lock:
            return await run_in_threadpool(func, *args)


def start_backend(service: str, load: Callable[[], R]) -> R:
    """Load a service's backend at start-up. A MeshforgeError (a missing model, an unknown backend) is
    logged as one plain sentence before start-up fails, instead of a traceback a person must read."""
    try:
        return load()
    except MeshforgeError as error:
        logging.getLogger(service).error("%s cannot start: %s", service, error.message)
        raise


def add_health_route(
    app: FastAPI, service: str, describe: Callable[[], HealthResponse] | None = None
) -> None:
    @app.get("/health", response_model=HealthResponse, tags=["health"])
    async def health() -> HealthResponse:
        return describe() if describe is not None else HealthResponse(service=service)


def serve(app_path: str, service: str, host: str, port: int, log_level: str) -> None:
    """Run one service process; the CLI entry of every `python -m <service>`."""
    configure_logging(service, log_level)
    uvicorn.run(app_path, host=host, port=port, log_level=log_level.lower(), access_log=False)
