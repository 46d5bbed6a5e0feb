"""The fleet's shared secret: stage services answer only callers that carry it.

The stage services (image-, flux-, reconstruction-, postprocess-service) are internal: only the
orchestrator, the dispatchers and image-service (→ flux-service) call them. On a network where other
machines or containers can reach their ports, ``MESHFORGE_INTERNAL_TOKEN`` closes them: every request
must carry the header ``X-Meshforge-Internal-Token: <token>``, else it gets 401.

A dedicated header rather than ``Authorization``: the public API's keys travel in ``Authorization``,
and the two must never be confused (an API key is not a fleet secret, and the fleet secret is never
sent to, or accepted from, the public side).

``GET /health`` stays open because compose and Kubernetes probes carry no secrets, but a caller without
the token gets only ``{"service", "status"}``: backend names, model details and busy state are for the
fleet (the orchestrator's /health aggregation and the dispatcher send the token).

``GET /metrics`` is not exempt: its series name backends and show load, as the full /health does, so
Prometheus sends the token (``http_headers`` in deploy/prometheus/prometheus.yml). The orchestrator, whose
API is public, closes only its ``/metrics`` this way (``only=``); the dispatcher's metrics server applies
the same rule (meshforge/metrics.py).
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

INTERNAL_TOKEN_HEADER = "X-Meshforge-Internal-Token"
_HEADER_KEY = INTERNAL_TOKEN_HEADER.lower().encode("latin-1")


def internal_headers(token: str) -> dict[str, str]:
    """The headers an internal client sends: the token when one is configured, else none."""
    return {INTERNAL_TOKEN_HEADER: token} if token else {}


class InternalTokenGuard:
    """Pure ASGI middleware: refuses every HTTP request that lacks the fleet's token (401)."""

    def __init__(self, app: ASGIApp, *, token: str, service: str, only: frozenset[str] | None = None) -> None:
        if not token:
            raise ValueError("InternalTokenGuard needs a non-empty token")
        self.app = app
        self.service = service
        self.only = only  # the paths it guards; None: every path
        self._token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        unguarded = self.only is not None and scope.get("path") not in self.only
        if scope["type"] != "http" or unguarded or self._carries_token(scope):
            await self.app(scope, receive, send)  # lifespan events pass; so does a fleet caller
            return
        if scope["path"] == "/health" and scope["method"] in ("GET", "HEAD"):
            response = JSONResponse({"service": self.service, "status": "ok"})
        else:
            response = JSONResponse(
                {
                    "detail": f"{self.service} is internal: the request needs the header "
                    f"{INTERNAL_TOKEN_HEADER} with the fleet's MESHFORGE_INTERNAL_TOKEN "
                    "(set the same value on every meshforge service)",
                    "code": "internal_token",
                },
                status_code=401,
            )
        await response(scope, receive, send)

    def _carries_token(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == _HEADER_KEY:
                # Constant-time: the time taken says nothing about how much of the token matched.
                return hmac.compare_digest(value, self._token)
        return False


def require_internal_token(
    app: FastAPI, service: str, token: str, only: frozenset[str] | None = None
) -> None:
    """Close a stage service's app (or only the paths ``only`` names) to callers without ``token``; an
    empty token leaves it open."""
    if token:
        app.add_middleware(InternalTokenGuard, token=token, service=service, only=only)
