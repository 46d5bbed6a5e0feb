"""Prometheus metrics every meshforge process shares: HTTP answers by route, stage work, backends.

Each process exposes prometheus_client's default registry: the apps made by
``meshforge.service.service_app`` at ``GET /metrics``, the dispatcher (which has no HTTP API) on its own
small server (``start_metrics_server``). Both follow the fleet's internal-token rule
(meshforge/internal_token.py): with ``MESHFORGE_INTERNAL_TOKEN`` set, a scrape must send the token in
``X-Meshforge-Internal-Token``. The control plane's job metrics are in orchestrator/metrics.py; the list
of every metric and who exposes it is in docs/architecture.md (Metrics and logs).

Every label has a bounded set of values: routes are templates (``/3d/status/{job_id}``), never raw paths,
and methods outside the standard ones count as ``other``, so no client can grow the series.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client import make_wsgi_app as _prometheus_wsgi_app
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshforge.errors import JobCancelled
from meshforge.internal_token import INTERNAL_TOKEN_HEADER

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a request no route matched (a 404): never the raw path
# Seconds; HTTP answers are mostly milliseconds, but a ?wait= status or a download can take minutes.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Stage work takes from tens of milliseconds (procedural images) to many minutes (FLUX on a busy GPU).
WORK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

HTTP_REQUESTS = Counter(
    "meshforge_http_requests_total",
    "HTTP answers, by route template (not the raw path) and status code",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "meshforge_http_request_duration_seconds",
    "Time from a request's arrival to the last byte of its answer, by route template",
    ["service", "method", "route"],
    buckets=HTTP_BUCKETS,
)
WORK_SECONDS = Histogram(
    "meshforge_work_duration_seconds",
    "Stage work of one job (one request's model call, normalisation or post-processing), by outcome",
    ["service", "outcome"],
    buckets=WORK_BUCKETS,
)
WORK_BUSY = Counter(
    "meshforge_work_busy_seconds_total",
    "Seconds spent in stage work, added when each piece ends: its rate is the replica's utilisation "
    "(above 1 where jobs run side by side, as in postprocess-service)",
    ["service"],
)
WORK_RUNNING = Gauge("meshforge_work_running", "Pieces of stage work running now", ["service"])
REPLICA_BUSY = Gauge(
    "meshforge_replica_busy",
    "1 while this replica runs any stage work (its /health busy), else 0",
    ["service"],
)
BACKEND_LOADED = Gauge(
    "meshforge_backend_loaded", "1 once the service's backend (its model) has loaded", ["service", "backend"]
)

_running: Tally[str] = Tally()  # pieces of work running per service (changed on the event loop only)


def backend_loaded(service: str, backend: str) -> None:
    BACKEND_LOADED.labels(service, backend).set(1)
    # The work series exist from start-up, at 0, so a rate over a replica that never worked is 0, not
    # missing.
    WORK_RUNNING.labels(service).set(_running[service])
    REPLICA_BUSY.labels(service).set(1 if _running[service] else 0)
    WORK_BUSY.labels(service)


@contextmanager
def observe_work(service: str) -> Iterator[None]:
    """Count one piece of stage work: running and busy while inside, its duration and outcome after."""
    _running[service] += 1
    WORK_RUNNING.labels(service).inc()
    REPLICA_BUSY.labels(service).set(1)
    started, outcome = time.monotonic(), "ok"
    try:
        yield
    except JobCancelled:
        outcome = "cancelled"
        raise
    except BaseException:
        outcome = "error"
        raise
    finally:
        elapsed = time.monotonic() - started
        _running[service] -= 1
        WORK_RUNNING.labels(service).dec()
        REPLICA_BUSY.labels(service).set(1 if _running[service] else 0)
        WORK_SECONDS.labels(service, outcome).observe(elapsed)
        WORK_BUSY.labels(service).inc(elapsed)


def route_template(scope: Scope) -> str:
    """The matched route's path format (``/3d/status/{job_id}``), set on the scope by Starlette's router."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) and template else UNMATCHED


class HttpMetricsMiddleware:
    """Pure ASGI middleware counting every answer by route template and status, with its duration.

    Pure ASGI, like RequestIdMiddleware: it must not buffer streamed downloads. An exception that
    escapes the app counts as the 500 that the request-id middleware outside it then sends.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: int | None = None
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            status = status or 500
            raise
        finally:
            method = str(scope.get("method", "")).upper()
            method = method if method in METHODS else "other"
            route = route_template(scope)
            # No status at all: the client went away before any answer (nginx's 499 says the same).
            HTTP_REQUESTS.labels(self.service, method, route, str(status or 499)).inc()
            HTTP_SECONDS.labels(self.service, method, route).observe(time.perf_counter() - started)


def exposition() -> bytes:
    return generate_latest(REGISTRY)


Scrape = Callable[[FastAPI], Awaitable[None]]


def add_metrics_route(app: FastAPI, before_scrape: Scrape | None = None) -> None:
    """``GET /metrics`` in Prometheus's text format. ``before_scrape`` refreshes the gauges read at scrape
    time (the orchestrator's queue depth from Redis). Not in the OpenAPI document: it is for Prometheus,
    not for API clients."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if before_scrape is not None:
            await before_scrape(request.app)
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """One line per scrape would drown the dispatcher's log."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never holds the dispatcher's exit
    allow_reuse_address = True


class _ThreadingServerV6(_ThreadingServer):
    address_family = socket.AF_INET6


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def guarded_wsgi_app(token: str) -> WsgiApp:
    """prometheus_client's WSGI app, refusing (401) a caller without the fleet's token when one is set."""
    inner = _prometheus_wsgi_app(REGISTRY)
    expected = token.encode("utf-8")
    environ_key = "HTTP_" + INTERNAL_TOKEN_HEADER.upper().replace("-", "_")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sent = str(environ.get(environ_key, "")).encode("latin-1", "replace")
        if expected and not hmac.compare_digest(sent, expected):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"detail": "metrics need the fleet\'s internal token", "code": "internal_token"}']
        answer: Iterable[bytes] = inner(environ, start_response)
        return answer

    return app


def start_metrics_server(host: str, port: int, token: str) -> WSGIServer | None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread, for a process with no HTTP server of its
    own (the dispatcher); port 0 serves nothing. A port already taken is logged and skipped: metrics are
    not worth stopping the jobs for (each dispatcher on one host needs a port of its own)."""
    if port == 0:
        return None
    server_class = _ThreadingServerV6 if ":" in host else _ThreadingServer
    try:
        server = make_server(host, port, guarded_wsgi_app(token), server_class, _QuietHandler)
    except OSError as exc:
        log.error("metrics not served: cannot listen on %s:%d (%s)", host, port, exc)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server
