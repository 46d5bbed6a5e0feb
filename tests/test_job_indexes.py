"""Cheap reads: the per-state indexes stay exact through every transition, listing by state costs the
same over 100 and 5,000 jobs, and `?wait=` wakes on the job's end event instead of polling Redis.

Against a real redis-server of this module's own (INFO commandstats counts every client's commands),
and, for `?wait=`, a real orchestrator process on it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.schemas import JobState
from meshforge.settings import is_settings_variable
from orchestrator.indexes import ALL_STATES, TERMINAL, backfill, state_index
from orchestrator.jobs import TERMINAL as JOB_TERMINAL
from orchestrator.jobs import Claim, JobStore
from orchestrator.queue import ReliableQueue
from tests.fleet import Fleet, Process, RedisServer, free_port
from tests.fleet import redis_scenario as scenario

REQUEST = {"prompt": "a red cube", "output_format": "glb", "quality_tier": "standard", "seed": 1}
KEYS = ["", "studio-a", "studio-b"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer.start(tmp_path_factory.mktemp("index-redis"))
    yield running
    running.process.stop()


async def full_scan(redis: Redis) -> dict[tuple[str, str], set[str]]:
    """(api key or "", state) → job ids, read from every job hash: what the indexes must say."""
    found: dict[tuple[str, str], set[str]] = {}
    for job_id in await redis.zrange(keys.JOBS_BY_TIME, 0, -1):
        state, api_key = await redis.hmget(keys.job(job_id), ["state", "api_key"])
        found.setdefault(("", state), set()).add(job_id)
        if api_key:
            found.setdefault((api_key, state), set()).add(job_id)
    return found


async def assert_indexes_exact(redis: Redis, store: JobStore) -> None:
    expected = await full_scan(redis)
    for api_key in KEYS:
        for state in ALL_STATES:
            wanted = expected.get((api_key, state), set())
            assert set(await redis.zrange(state_index(state, api_key or None), 0, -1)) == wanted, (
                api_key,
                state,
            )
            listed, total = await store.list(0, 100, JobState(state), api_key or None)
            assert total == len(wanted)
            assert {job.job_id for job in listed} == wanted
            assert [job.created_at for job in listed] == sorted((j.created_at for j in listed), reverse=True)
    ended = set(await redis.zrange(keys.JOBS_ENDED, 0, -1))
    assert ended == set().union(*(expected.get(("", s), set()) for s in TERMINAL))


def test_state_indexes_stay_exact_through_every_transition(server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = ReliableQueue(redis, "worker-a", 0.3)
        await a.register()
        jobs = [await store.create("prompt", REQUEST, api_key=KEYS[i % 3]) for i in range(9)]
        await assert_indexes_exact(redis, store)

        async def take(queue: ReliableQueue) -> str:
            job_id = await queue.claim(timeout=1.0)
            assert job_id is not None
            await store.claim(job_id, queue.worker_id, max_attempts=2)
            return job_id

        running = [await take(a) for _ in range(5)]  # the five oldest jobs
        for job_id in running:
            await store.enter_stage(job_id, "worker-a", JobState.generating_images, "drawing", 5)
        await assert_indexes_exact(redis, store)
        await store.enter_stage(running[0], "worker-a", JobState.reconstructing_3d, "meshing", 40)
        await store.enter_stage(running[0], "worker-a", JobState.post_processing, "cleaning", 80)
        await store.finish(running[0], "worker-a", JobState.completed, asset_path="x.glb")
        await store.finish(running[1], "worker-a", JobState.failed, message="image stage failed: no")
        await store.cancel(running[2])  # a running job
        await store.cancel(jobs[-1])  # a queued one
        await assert_indexes_exact(redis, store)

        assert await a.requeue(running[3], "requeued: test", JOB_TERMINAL)  # the reconciliation
        await assert_indexes_exact(redis, store)
        while await redis.exists(keys.worker_alive("worker-a")):  # worker A dies
            await asyncio.sleep(0.05)
        b = ReliableQueue(redis, "worker-b", 60)
        await b.register()
        assert await b.reap(JOB_TERMINAL) == 1  # running[4] goes back to the queue
        await assert_indexes_exact(redis, store)
        assert running[4] in await redis.zrange(state_index("queued"), 0, -1)

        # Claimed once more than max_attempts: it ends failed in the claim script itself.
        assert await take(b) == running[4]  # first in line
        assert await b.requeue(running[4], "requeued: test", JOB_TERMINAL)
        assert await b.claim(timeout=1.0) == running[4]
        assert await store.claim(running[4], "worker-b", max_attempts=2) is Claim.exhausted
        await assert_indexes_exact(redis, store)

    scenario(server, body)


def commands_since(client: sync_redis.Redis, before: dict[str, int]) -> int:
    """Commands Redis ran since ``before``, the INFO calls that measure it left out."""
    now = command_counts(client)
    return sum(calls - before.get(name, 0) for name, calls in now.items() if name != "cmdstat_info")


def command_counts(client: sync_redis.Redis) -> dict[str, int]:
    return {name: stats["calls"] for name, stats in client.info("commandstats").items()}


def test_listing_by_state_costs_the_same_over_100_and_5000_jobs(server: RedisServer) -> None:
    costs: dict[int, int] = {}
    for count in (100, 5000):

        async def body(redis: Redis, count: int = count) -> None:
            store = JobStore(redis)
            for index in range(count):
                await store.create("prompt", REQUEST, api_key=KEYS[index % 3])
            with sync_redis.Redis.from_url(server.url, decode_responses=True) as client:
                before = command_counts(client)
                jobs, total = await store.list(40, 20, JobState.queued)
                mine, mine_total = await store.list(0, 20, JobState.queued, "studio-a")
                costs[count] = commands_since(client, before)
            assert (len(jobs), total) == (20, count)
            assert len(mine) == 20 and mine_total == len(range(1, count, 3))

        scenario(server, body)
    print(f"Redis commands for two state-filtered pages: {costs}")
    assert costs[100] == costs[5000] <= 2 * (2 + 20)  # ZCARD + ZREVRANGE + one HGETALL per job


def test_backfill_indexes_jobs_recorded_before_the_indexes_once(server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        jobs = [await store.create("prompt", REQUEST, api_key=KEYS[i % 3]) for i in range(12)]
        await store.cancel(jobs[0])
        await redis.hset(keys.job(jobs[1]), "state", "completed")  # as an older version wrote it
        for name in await redis.keys("3d:jobs:*"):
            await redis.delete(name)  # no index yet (3d:jobs, 3d:jobs:key:{name} stay)
        assert await backfill(redis) == 12
        await assert_indexes_exact(redis, store)
        assert await backfill(redis) == 0  # done once: later dispatchers skip it

    scenario(server, body)


# --- ?wait= ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orchestrator(server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real orchestrator on this module's Redis; stage URLs point at closed loopback ports."""
    data = tmp_path_factory.mktemp("wait-data")
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        "MESHFORGE_DATA_DIR": str(data),
        "MESHFORGE_REDIS_URL": server.url,
        "MESHFORGE_ORCHESTRATOR_PORT": str(free_port()),
        **{f"MESHFORGE_{s}_SERVICE_URLS": dead for s in ("IMAGE", "FLUX", "RECONSTRUCTION", "POSTPROCESS")},
        "PYTHONUNBUFFERED": "1",
    }
    inherited = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    fleet = Fleet(Path(data), server, {**inherited, **env})
    process: Process = fleet.start_service("orchestrator", "orchestrator", "MESHFORGE_ORCHESTRATOR_PORT")
    yield fleet.api
    process.stop()


def test_wait_returns_as_the_job_ends_and_sends_no_redis_commands_while_idle(
    server: RedisServer, orchestrator: str
) -> None:
    client = sync_redis.Redis.from_url(server.url, decode_responses=True)
    job_id = asyncio.run(_create_job(server.url))
    answer: dict = {}

    def wait() -> None:
        with httpx.Client(base_url=orchestrator, timeout=60) as api:
            response = api.get(f"/3d/status/{job_id}", params={"wait": 30})
            answer["at"] = time.monotonic()
            answer["body"] = response.json()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)  # the request has subscribed and read the job: from here on it only waits
    before = command_counts(client)
    time.sleep(1.5)
    idle_commands = commands_since(client, before)
    ended_at = time.monotonic()
    asyncio.run(_cancel_job(server.url, job_id))
    waiter.join(10)
    latency = answer["at"] - ended_at
    print(f"?wait= answered {latency * 1000:.0f} ms after the job ended; {idle_commands} commands idle")
    assert answer["body"]["state"] == "cancelled"
    assert idle_commands == 0, "a waiting request sent Redis commands while its job did not change"
    assert latency < 0.3
    client.close()


async def _create_job(url: str) -> str:
    redis = Redis.from_url(url, decode_responses=True)
    try:
        return await JobStore(redis).create("prompt", REQUEST)
    finally:
        await redis.aclose()


async def _cancel_job(url: str, job_id: str) -> None:
    redis = Redis.from_url(url, decode_responses=True)
    try:
        await JobStore(redis).cancel(job_id)
    finally:
        await redis.aclose()
