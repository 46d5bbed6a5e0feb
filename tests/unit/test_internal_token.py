"""The fleet-secret guard and the client side, in process (the live fleet: tests/test_internal_token.py)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from meshforge.http import make_client
from meshforge.internal_token import INTERNAL_TOKEN_HEADER, InternalTokenGuard, require_internal_token
from meshforge.service import add_health_route, service_app

TOKEN = "0123456789abcdef" * 4


def stage_app(token: str) -> FastAPI:
    app = service_app("test-service")
    require_internal_token(app, "test-service", token)
    add_health_route(app, "test-service")

    @app.post("/work")
    async def work() -> dict[str, str]:
        return {"done": "yes"}

    return app


def test_an_empty_token_leaves_the_service_open() -> None:
    app = stage_app("")
    assert not any(m.cls is InternalTokenGuard for m in app.user_middleware)
    with TestClient(app) as client:
        assert client.post("/work").json() == {"done": "yes"}
        assert client.get("/health").json()["service"] == "test-service"


def test_the_right_token_is_let_in_and_any_other_refused() -> None:
    with TestClient(stage_app(TOKEN)) as client:
        assert client.post("/work", headers={INTERNAL_TOKEN_HEADER: TOKEN}).status_code == 200
        for headers in ({}, {INTERNAL_TOKEN_HEADER: TOKEN.upper()}, {"Authorization": f"Bearer {TOKEN}"}):
            refused = client.post("/work", headers=headers)
            assert refused.status_code == 401 and refused.json()["code"] == "internal_token"


def test_health_without_the_token_is_minimal_also_for_head() -> None:
    with TestClient(stage_app(TOKEN)) as client:
        assert client.get("/health").json() == {"service": "test-service", "status": "ok"}
        assert client.head("/health").status_code == 200
        assert client.post("/health").status_code == 401  # only reads are open
        full = client.get("/health", headers={INTERNAL_TOKEN_HEADER: TOKEN}).json()
        assert full["busy"] is False and "detail" in full


def test_the_guard_needs_a_token() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        InternalTokenGuard(FastAPI(), token="", service="x")


def test_the_internal_client_sends_the_token_only_when_one_is_set() -> None:
    async def headers(token: str) -> dict[str, str]:
        async with make_client(5.0, token) as client:
            return dict(client.headers)

    assert asyncio.run(headers(TOKEN))[INTERNAL_TOKEN_HEADER.lower()] == TOKEN
    assert INTERNAL_TOKEN_HEADER.lower() not in asyncio.run(headers(""))
