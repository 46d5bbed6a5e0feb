"""Request ids: every answer of every service carries `X-Request-ID`, and an unexpected error is a 500
that names that id instead of the exception (the log line with the traceback names it too).

A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware: it must not buffer streamed
downloads, and it must see exceptions before Starlette's ServerErrorMiddleware, which answers and then
re-raises them (the server then closes the connection, which clients see as a reset).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
# What nginx's $request_id looks like, and what a client may sensibly send; anything else is replaced.
_ACCEPTED = re.compile(r"[A-Za-z0-9._-]{1,64}")

log = logging.getLogger("meshforge.errors")


def request_id_of(scope: Scope) -> str:
    """The id the middleware gave this request ("-" outside of it, e.g. in a bare test app)."""
    return str(scope.get("state", {}).get("request_id", "-"))


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            text = value.decode("latin-1")
            return text if _ACCEPTED.fullmatch(text) else None
    return None


def internal_error_body(request_id: str) -> dict[str, str]:
    """The whole of a 500 answer: no exception text, no server path; the log holds those."""
    return {
        "detail": f"internal error (request id {request_id}): the server log has the details",
        "code": "internal_error",
        "request_id": request_id,
    }


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER.encode(), request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER.encode()]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error (request id %s) in %s %r", request_id, *_route(scope))
            if started:
                raise  # half an answer is out: only closing the connection can tell the client
            await _send_json(send, 500, internal_error_body(request_id), header)


def _route(scope: Scope) -> tuple[str, str]:
    return str(scope.get("method", "")), str(scope.get("path", ""))[:200]


async def _send_json(send: Send, status: int, body: dict[str, Any], *headers: tuple[bytes, bytes]) -> None:
    content = json.dumps(body).encode()
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": content})
