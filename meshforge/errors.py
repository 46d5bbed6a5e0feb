"""Typed errors shared by every service.

Each error knows its HTTP status and a stable machine-readable ``code``; ``meshforge.service`` maps
them to responses in one place, and ``meshforge.http`` turns such responses from a stage service back
into the same types, so a message written deep inside a backend reaches the job status unchanged.
"""

from __future__ import annotations

from typing import ClassVar


class MeshforgeError(Exception):
    """Base of every error meshforge raises on purpose. ``message`` is meant for people."""

    status_code = 500
    code = "internal_error"
    headers: ClassVar[dict[str, str]] = {}  # sent with the error answer (e.g. WWW-Authenticate)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(MeshforgeError):
    """The request or its files cannot be used as given."""

    status_code = 422
    code = "invalid_input"


class UnsupportedPrompt(InvalidInput):
    """The configured image backend cannot draw what the prompt describes."""

    code = "unsupported_prompt"


class UnsupportedFormat(InvalidInput):
    """The requested output format cannot be produced by the configured backend."""

    code = "unsupported_format"


class NotFound(MeshforgeError):
    status_code = 404
    code = "not_found"


class Conflict(MeshforgeError):
    """The request is valid but the resource is not in a state that allows it."""

    status_code = 409
    code = "conflict"


class JobCancelled(Conflict):
    """The job's work was abandoned at a safe point: it was cancelled, or its dispatcher gave it up."""

    code = "job_cancelled"


class PayloadTooLarge(MeshforgeError):
    status_code = 413
    code = "payload_too_large"


class RetryLater(MeshforgeError):
    """Base of the errors that tell the caller when to try again: ``retry_after`` seconds, sent as the
    answer's ``Retry-After`` header (``default_retry_after`` unless the raiser knows better)."""

    default_retry_after: ClassVar[float] = 1.0

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after


class ServiceBusy(RetryLater):
    """A one-job-at-a-time service is working on another job; try again or use another replica."""

    status_code = 503
    code = "busy"


class Unauthorized(MeshforgeError):
    """API keys are configured and the request carries none, or one that is not valid."""

    status_code = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="meshforge"'}


class Forbidden(MeshforgeError):
    """The caller's key is valid but the job or upload belongs to another key."""

    status_code = 403
    code = "forbidden"


class RateLimited(RetryLater):
    """A per-key quota (requests per minute, concurrent jobs) is used up; retry after ``retry_after`` s."""

    status_code = 429
    code = "rate_limited"


class QueueFull(RetryLater):
    """The job queue holds as many jobs as the operator allows; retry after ``retry_after`` s."""

    status_code = 503
    code = "queue_full"
    default_retry_after = 10.0


class StageUnavailable(MeshforgeError):
    """No replica of a stage service could be reached, or all stayed busy until the deadline."""

    status_code = 503
    code = "stage_unavailable"


class BackendError(MeshforgeError):
    """A backend failed while processing valid input (a model crashed, a file could not be written)."""

    status_code = 500
    code = "backend_error"


class StorageFull(MeshforgeError):
    """The shared storage has no space left (ENOSPC): nothing half-written was left under a file's name."""

    status_code = 507
    code = "storage_full"


class ModelNotFound(MeshforgeError):
    """Model weights a backend needs are not under models/; raised at start-up, never at request time."""

    status_code = 503
    code = "model_not_found"


ERRORS_BY_CODE: dict[str, type[MeshforgeError]] = {
    cls.code: cls
    for cls in (
        MeshforgeError,
        InvalidInput,
        UnsupportedPrompt,
        UnsupportedFormat,
        NotFound,
        Conflict,
        JobCancelled,
        PayloadTooLarge,
        Unauthorized,
        Forbidden,
        RateLimited,
        QueueFull,
        ServiceBusy,
        StageUnavailable,
        BackendError,
        StorageFull,
        ModelNotFound,
    )
}
