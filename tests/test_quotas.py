"""Quotas and backpressure: per-key requests per minute and concurrent jobs (429 + Retry-After), the global
queue cap (503 + Retry-After), all kept in Redis so that several orchestrators share them.

The orchestrators here have no dispatcher: their jobs stay queued, so the counts are exact.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis

from orchestrator.auth import Caller
from orchestrator.jobs import JobStore, new_job_id
from orchestrator.quotas import Quotas
from tests.api_keys import key_list
from tests.fleet import Fleet, Process, Stack, free_port, start_stack

pytestmark = pytest.mark.fleet

QUOTA_KEYS: dict[str, tuple[str, dict[str, object]]] = {
    "rate": ("mf_quota_rate_0123456789", {"requests_per_minute": 3, "max_concurrent_jobs": 0}),
    "shared": ("mf_quota_shared_0123456789", {"requests_per_minute": 5, "max_concurrent_jobs": 0}),
    "jobs": ("mf_quota_jobs_0123456789", {"requests_per_minute": 0, "max_concurrent_jobs": 2}),
    "free": ("mf_quota_free_0123456789", {"requests_per_minute": 0, "max_concurrent_jobs": 0}),
}
PROMPT = {"prompt": "a red cube"}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {QUOTA_KEYS[name][0]}"}


@pytest.fixture(scope="module")
def quota_stack(keys_fleet: Fleet) -> Iterator[Stack]:
    stack = start_stack(keys_fleet, "quotas", 12, MESHFORGE_API_KEYS=key_list(QUOTA_KEYS))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def second_api(keys_fleet: Fleet, quota_stack: Stack) -> Iterator[str]:
    """Another orchestrator process on the same Redis database as quota_stack."""
    port = free_port()
    env = {**quota_stack.env, "MESHFORGE_ORCHESTRATOR_PORT": str(port)}
    process: Process = keys_fleet.start_service(
        "quotas-second-api", "orchestrator", "MESHFORGE_ORCHESTRATOR_PORT", **env
    )
    yield f"http://127.0.0.1:{port}"
    process.stop()


@pytest.fixture(scope="module")
def capped_stack(keys_fleet: Fleet) -> Iterator[Stack]:
    stack = start_stack(
        keys_fleet, "queue-cap", 13, MESHFORGE_API_KEYS=key_list(QUOTA_KEYS), MESHFORGE_MAX_QUEUED_JOBS="3"
    )
    yield stack
    stack.stop()


def png() -> bytes:
    from tests.meshes import canonical_photos, stacked_boxes

    return canonical_photos(stacked_boxes(), 1)[0]


def assert_retry_after(response: httpx.Response, status: int, code: str, low: int, high: int) -> int:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    retry_after = int(response.headers["retry-after"])
    assert low <= retry_after <= high
    assert f"try again in {retry_after} s" in response.json()["detail"]
    return retry_after


def test_rate_limit_counts_jobs_and_uploads_then_answers_429_with_retry_after(quota_stack: Stack) -> None:
    with httpx.Client(base_url=quota_stack.api, timeout=30, headers=auth("rate")) as client:
        assert client.post("/3d/generate", json=PROMPT).status_code == 200
        assert client.post("/3d/upload", files=[("files", ("a.png", png(), "image/png"))]).status_code == 201
        assert client.post("/3d/generate", json=PROMPT).status_code == 200
        refused = client.post("/3d/generate", json=PROMPT)
        assert_retry_after(refused, 429, "rate_limited", 1, 60)
        assert "limit of 3 new jobs and uploads per minute" in refused.json()["detail"]
        upload = client.post("/3d/upload", files=[("files", ("a.png", png(), "image/png"))])
        assert_retry_after(upload, 429, "rate_limited", 1, 60)
        # Reading is not limited.
        assert client.get("/3d/jobs").status_code == 200
    with httpx.Client(base_url=quota_stack.api, timeout=30, headers=auth("free")) as other:
        assert other.post("/3d/generate", json=PROMPT).status_code == 200  # another key's own budget


def test_concurrent_jobs_limit_answers_429_until_a_job_finishes(quota_stack: Stack) -> None:
    with httpx.Client(base_url=quota_stack.api, timeout=30, headers=auth("jobs")) as client:
        first, second = (client.post("/3d/generate", json=PROMPT).json()["job_id"] for _ in range(2))
        refused = client.post("/3d/generate", json=PROMPT)
        assert_retry_after(refused, 429, "rate_limited", 1, 10)
        assert "limit of 2 concurrent jobs" in refused.json()["detail"]
        # A finished job stops counting: the script sees its state (no dispatcher involved).
        assert client.post(f"/3d/cancel/{first}").status_code == 200
        assert client.post("/3d/generate", json=PROMPT).status_code == 200
        assert client.post("/3d/generate", json=PROMPT).status_code == 429
        assert client.get(f"/3d/status/{second}").json()["state"] == "queued"


def test_queue_cap_answers_503_with_retry_after(capped_stack: Stack) -> None:
    with httpx.Client(base_url=capped_stack.api, timeout=30, headers=auth("free")) as client:
        jobs = [client.post("/3d/generate", json=PROMPT) for _ in range(3)]
        assert [r.status_code for r in jobs] == [200, 200, 200]
        full = client.post("/3d/generate", json=PROMPT)
        assert_retry_after(full, 503, "queue_full", 1, 60)
        assert "queue is full" in full.json()["detail"]
        assert client.post("/3d/upload", files=[("files", ("a.png", png(), "image/png"))]).status_code == 201
        client.post(f"/3d/cancel/{jobs[0].json()['job_id']}")  # leaves the queue
        assert client.post("/3d/generate", json=PROMPT).status_code == 200


def test_two_orchestrators_share_one_rate_limit(quota_stack: Stack, second_api: str) -> None:
    apis = [quota_stack.api, second_api]
    answers = []
    for index in range(10):
        response = httpx.post(
            f"{apis[index % 2]}/3d/generate", json=PROMPT, headers=auth("shared"), timeout=30
        )
        answers.append(response.status_code)
    assert answers.count(200) == 5, answers  # the key's 5 per minute, over both processes together
    assert answers[:5] == [200] * 5 and set(answers[5:]) == {429}


def test_admission_takes_one_short_round_trip(quota_stack: Stack) -> None:
    """The admission script's time with every limit on and 50 to 250 jobs of the key still active."""

    async def measure() -> tuple[float, float]:
        redis = Redis.from_url(quota_stack.redis_url, decode_responses=True)
        try:
            quotas, store = Quotas(redis, 1000), JobStore(redis)
            caller = Caller(name="measure", requests_per_minute=10_000, max_concurrent_jobs=10_000)
            for _ in range(50):
                job_id = new_job_id()
                await quotas.admit_job(caller, job_id)
                await store.create("prompt", PROMPT, api_key="measure", job_id=job_id)
            times = []
            for _ in range(200):
                started = time.perf_counter()
                await quotas.admit_upload(caller, new_job_id())
                await quotas.admit_job(caller, new_job_id())
                times.append((time.perf_counter() - started) * 1000 / 2)
            return statistics.median(times), sorted(times)[int(len(times) * 0.99)]
        finally:
            await redis.aclose()

    median, p99 = asyncio.run(measure())
    print(f"admission script, 50-250 active jobs: median {median:.2f} ms, p99 {p99:.2f} ms per call")
    assert median < 20
