"""Typed errors shared by every service.

Each error knows its HTTP status and a stable machine-readable ``code``; ``meshforge.service`` maps
them to responses in one place, and ``meshforge.http`` turns such responses from a stage service back
into the same types, so a message written deep inside a backend reaches the job status unchanged.
"""

from __future__ import annotations


class MeshforgeError(Exception):
    """Base of every error meshforge raises on purpose. ``message`` is meant for people."""

    status_code = 500
    code = "internal_error"

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


class PayloadTooLarge(MeshforgeError):
    status_code = 413
    code = "payload_too_large"


class ServiceBusy(MeshforgeError):
    """A one-job-at-a-time service is working on another job; try again or use another replica."""

    status_code = 503
    code = "busy"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StageUnavailable(MeshforgeError):
    """No replica of a stage service could be reached, or all stayed busy until the deadline."""

    status_code = 503
    code = "stage_unavailable"


class BackendError(MeshforgeError):
    """A backend failed while processing valid input (a model crashed, a file could not be written)."""

    status_code = 500
    code = "backend_error"


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
        PayloadTooLarge,
        ServiceBusy,
        StageUnavailable,
        BackendError,
        ModelNotFound,
    )
}
