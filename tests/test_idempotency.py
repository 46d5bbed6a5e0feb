"""Idempotent submits: the same Idempotency-Key with the same request answers the first job, a different
request is a 409, and keys are scoped per API key (orchestrator/idempotency.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.errors import QueueFull
from orchestrator.idempotency import (
    RESERVATION_SECONDS,
    Entry,
    IdempotencyKeys,
    IdempotentRequestInProgress,
    fingerprint,
)
from tests.api_keys import bearer
from tests.fleet import Fleet, RedisServer, redis_scenario, wait_for_end

pytestmark = pytest.mark.fleet

CUBE = {"prompt": "a red cube", "quality_tier": "standard"}


def new_key() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_a_resent_submit_with_the_same_key_answers_the_first_job(api: httpx.Client) -> None:
    key = new_key()
    first = api.post("/3d/generate", json=CUBE, headers={"Idempotency-Key": key})
    again = api.post("/3d/generate", json=CUBE, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert wait_for_end(api, first.json()["job_id"])["state"] == "completed"


def test_the_same_key_with_a_different_request_is_refused_with_409(api: httpx.Client) -> None:
    key = new_key()
    assert api.post("/3d/generate", json=CUBE, headers={"Idempotency-Key": key}).status_code == 200
    other = api.post(
        "/3d/generate", json={**CUBE, "prompt": "a blue sphere"}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert "different request" in other.json()["detail"]


def test_a_request_with_defaults_spelled_out_is_the_same_request(api: httpx.Client) -> None:
    key = new_key()
    short = api.post("/3d/generate", json={"prompt": "a red cube"}, headers={"Idempotency-Key": key})
    spelled = api.post(
        "/3d/generate",
        json={"prompt": "a red cube", "quality_tier": "standard", "output_format": "glb"},
        headers={"Idempotency-Key": key},
    )
    assert spelled.status_code == 200
    assert spelled.json()["job_id"] == short.json()["job_id"]


def test_without_a_key_every_submit_makes_a_new_job(api: httpx.Client) -> None:
    ids = {api.post("/3d/generate", json=CUBE).json()["job_id"] for _ in range(2)}
    assert len(ids) == 2


def test_concurrent_submits_with_one_key_make_one_job(fleet: Fleet) -> None:
    key = new_key()

    async def submit(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/3d/generate", json=CUBE, headers={"Idempotency-Key": key})

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=fleet.api, timeout=30) as client:
            return await asyncio.gather(*(submit(client) for _ in range(12)))

    answers = asyncio.run(burst())
    made = {a.json()["job_id"] for a in answers if a.status_code == 200}
    assert len(made) == 1
    # The rest were replays, or told the first request is still creating the job (retry in a second).
    for answer in answers:
        assert answer.status_code == 200 or (
            answer.status_code == 409 and answer.json()["code"] == "idempotent_request_in_progress"
        )


@pytest.mark.parametrize("bad", ["", "x" * 256, "has space", "tab\tkey"])
def test_a_malformed_key_is_a_422(api: httpx.Client, bad: str) -> None:
    answer = api.post("/3d/generate", json=CUBE, headers={"Idempotency-Key": bad})
    assert answer.status_code == 422
    assert "Idempotency-Key" in answer.json()["detail"]


def test_from_image_submits_are_idempotent_too(api: httpx.Client) -> None:
    key = new_key()
    body = {"image_urls": ["https://example.com/chair.png"]}
    first = api.post("/3d/from-image", json=body, headers={"Idempotency-Key": key})
    again = api.post("/3d/from-image", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200
    assert again.json()["job_id"] == first.json()["job_id"]


def test_keys_are_scoped_per_api_key(keys_fleet: Fleet) -> None:
    key = new_key()
    with httpx.Client(base_url=keys_fleet.api, timeout=30) as client:
        alice = client.post("/3d/generate", json=CUBE, headers={**bearer("alice"), "Idempotency-Key": key})
        bob = client.post("/3d/generate", json=CUBE, headers={**bearer("bob"), "Idempotency-Key": key})
    assert alice.status_code == bob.status_code == 200
    assert alice.json()["job_id"] != bob.json()["job_id"]


# The store itself, on a real Redis: what a refused or dead first request leaves behind.


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer.start(Path(tmp_path_factory.mktemp("idempotency-redis")))
    yield server
    server.process.stop()


def test_a_refused_submit_gives_its_key_back(redis_server: RedisServer) -> None:
    async def scenario(redis: Redis) -> list[str]:
        store, digest = IdempotencyKeys(redis, 60), fingerprint("prompt", CUBE)

        async def refused() -> str:
            raise QueueFull("the job queue is full")

        with pytest.raises(QueueFull):
            await store.submit("", "k1", digest, "job-a", refused)
        job_id, replayed = await store.submit("", "k1", digest, "job-b", _made(redis, "job-b"))
        return [job_id, str(replayed)]

    assert redis_scenario(redis_server, scenario) == ["job-b", "False"]


def test_a_second_submit_while_the_first_creates_its_job_is_told_to_retry(redis_server: RedisServer) -> None:
    async def scenario(redis: Redis) -> float:
        store, digest = IdempotencyKeys(redis, 60), fingerprint("prompt", CUBE)
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return await _made(redis, "job-slow")()

        first = asyncio.create_task(store.submit("", "k2", digest, "job-slow", slow))
        await asyncio.sleep(0.05)
        try:
            with pytest.raises(IdempotentRequestInProgress) as refused:
                await store.submit("", "k2", digest, "job-other", _made(redis, "job-other"))
        finally:
            release.set()
        assert await first == ("job-slow", False)
        assert await store.submit("", "k2", digest, "job-third", _made(redis, "job-third")) == (
            "job-slow",
            True,
        )
        return refused.value.retry_after

    assert redis_scenario(redis_server, scenario) > 0


def test_a_reservation_whose_job_never_appeared_is_taken_over(redis_server: RedisServer) -> None:
    async def scenario(redis: Redis) -> tuple[str, bool]:
        store, digest = IdempotencyKeys(redis, 60), fingerprint("prompt", CUBE)
        dead = Entry(digest, "job-never-made", time.time() - RESERVATION_SECONDS - 1)
        await redis.set(keys.idempotency("", "k3"), dead.encode(), px=60_000)
        return await store.submit("", "k3", digest, "job-new", _made(redis, "job-new"))

    assert redis_scenario(redis_server, scenario) == ("job-new", False)


def _made(redis: Redis, job_id: str) -> Callable[[], Awaitable[str]]:
    async def create() -> str:
        await redis.hset(keys.job(job_id), mapping={"job_id": job_id, "state": "queued"})
        return job_id

    return create
