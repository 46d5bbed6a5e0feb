"""The meshforge API from Python: ``Client`` (blocking) and ``AsyncClient``, typed with the public
schemas (meshforge.schemas), and the ``meshforge`` command line (meshforge.client.cli).
docs/client.md describes them."""

from __future__ import annotations

from meshforge.client.aio import AsyncClient
from meshforge.client.config import API_VARIABLE, DEFAULT_API, KEY_VARIABLE, format_of
from meshforge.client.errors import (
    ApiError,
    ApiUnreachable,
    ClientError,
    Conflict,
    Forbidden,
    InvalidImages,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    WaitTimedOut,
)
from meshforge.client.retry import RetryPolicy
from meshforge.client.sse import Event
from meshforge.client.sync import Client

__all__ = [
    "API_VARIABLE",
    "DEFAULT_API",
    "KEY_VARIABLE",
    "ApiError",
    "ApiUnreachable",
    "AsyncClient",
    "Client",
    "ClientError",
    "Conflict",
    "Event",
    "Forbidden",
    "InvalidImages",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "ServiceUnavailable",
    "Unauthorized",
    "WaitTimedOut",
    "format_of",
]
