"""What the client raises: typed errors a caller can catch one by one.

These are the client's own types, not the server's (``meshforge.errors``): a client may talk to a server
of another version, so an answer is classified by its HTTP status, and the server's machine ``code`` and
``detail`` are kept as they came.
"""

from __future__ import annotations

from typing import ClassVar

import httpx


class ClientError(Exception):
    """Base of everything the meshforge client raises on purpose."""


class ApiError(ClientError):
    """The API answered with an error: its HTTP ``status``, machine ``code`` and ``detail`` for people."""

    status_code: ClassVar[int | None] = None  # the status a subclass stands for

    def __init__(self, status: int, code: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{detail} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class Unauthorized(ApiError):
    """401: the server needs an API key (``--key`` / ``MESHFORGE_API_KEY``), or the one sent is not valid."""

    status_code = 401


class Forbidden(ApiError):
    """403: the job or upload belongs to another API key."""

    status_code = 403


class NotFound(ApiError):
    """404: no such job (or, from an older server, no such endpoint)."""

    status_code = 404


class Conflict(ApiError):
    """409: the job is not in a state that allows this, or an Idempotency-Key was reused."""

    status_code = 409


class InvalidRequest(ApiError):
    """422: the request was refused as given; ``detail`` says which field and why."""

    status_code = 422


class RateLimited(ApiError):
    """429: a quota of the API key is used up; ``retry_after`` says when to try again."""

    status_code = 429


class ServiceUnavailable(ApiError):
    """503: the server is busy or its queue is full; ``retry_after`` says when to try again."""

    status_code = 503


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status_code: cls
    for cls in (Unauthorized, Forbidden, NotFound, Conflict, InvalidRequest, RateLimited, ServiceUnavailable)
    if cls.status_code is not None
}


class ApiUnreachable(ClientError):
    """The API could not be reached (refused, timed out, dropped) even after the retries."""

    def __init__(self, base_url: str, cause: Exception) -> None:
        reason = str(cause) or type(cause).__name__
        super().__init__(
            f"cannot reach the meshforge API at {base_url} ({reason}); is it running? "
            "Point the client at it with --api or MESHFORGE_API"
        )
        self.base_url = base_url
        self.cause = cause


class WaitTimedOut(ClientError):
    """The job did not finish within the time the caller was willing to wait (it goes on on the server)."""

    def __init__(self, job_id: str, timeout: float, state: str | None) -> None:
        still = f" (still {state})" if state else ""
        super().__init__(f"job {job_id} did not finish within {timeout:g} s{still}")
        self.job_id = job_id
        self.timeout = timeout
        self.state = state


class InvalidImages(ClientError, ValueError):
    """The images given to from_images cannot make a request: wrong count, mixed files and URLs, missing."""


def retry_after_of(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (only the delay-seconds form: the server sends no dates)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed error for an error answer: ``{"detail", "code"}`` JSON, or whatever a proxy sent."""
    code, detail = f"http_{response.status_code}", response.reason_phrase or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        detail = str(body.get("detail") or detail)
    elif response.text.strip():
        detail = response.text.strip()[:500]  # an HTML error page of a proxy: its start says enough
    cls = ERRORS_BY_STATUS.get(response.status_code, ApiError)
    return cls(response.status_code, code, detail, retry_after_of(response))
