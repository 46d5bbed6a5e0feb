"""The reliable queue keeps its promises: no job is lost, none runs twice, none is stuck.

The first tests drive `ReliableQueue` and `JobStore` directly against a real redis-server. The last
ones run real dispatcher processes on their own Redis database (the fleet's stage services do the
work) and kill or stop them in the middle of a job.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.errors import Conflict, NotFound
from meshforge.schemas import JobState
from orchestrator.jobs import TERMINAL, Claim, JobStore
from orchestrator.queue import RELEASED_MESSAGE, ReliableQueue
from tests.fleet import (
    DispatcherProcess,
    Fleet,
    RedisServer,
    Stack,
    download,
    start_stack,
    wait_for_end,
    wait_for_state,
)
from tests.fleet import redis_scenario as scenario
from tests.meshes import load

pytestmark = pytest.mark.fleet

SHORT_LEASE = 0.3
LONG_LEASE = 60.0
REQUEST = {"prompt": "a red cube", "output_format": "glb", "quality_tier": "standard", "seed": 1}


# --- ReliableQueue and JobStore against a real redis-server -----------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer.start(tmp_path_factory.mktemp("queue-redis"))
    yield server
    server.process.stop()


async def worker(redis: Redis, worker_id: str, lease_seconds: float) -> ReliableQueue:
    queue = ReliableQueue(redis, worker_id, lease_seconds)
    await queue.register()
    return queue


async def take(queue: ReliableQueue, store: JobStore) -> str:
    """What a dispatcher slot does: move the next job to its processing list, own it, start it."""
    job_id = await queue.claim(timeout=1.0)
    assert job_id is not None, "the queue was empty"
    assert await store.claim(job_id, queue.worker_id) is Claim.run
    assert await store.enter_stage(job_id, queue.worker_id, JobState.generating_images, "drawing views", 5)
    return job_id


async def wait_for_lease_to_expire(redis: Redis, worker_id: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while await redis.exists(keys.worker_alive(worker_id)):
        assert time.monotonic() < deadline, f"the lease of {worker_id} never expired"
        await asyncio.sleep(0.02)


def test_claimed_job_sits_in_the_workers_processing_list_until_it_ends(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", LONG_LEASE)
        job_id = await store.create("prompt", REQUEST)
        assert await redis.lrange(keys.QUEUE, 0, -1) == [job_id]

        assert await take(a, store) == job_id
        assert await redis.lrange(keys.QUEUE, 0, -1) == []
        assert await redis.lrange(a.processing_key, 0, -1) == [job_id]
        record = await store.raw(job_id)
        assert record["owner"] == "worker-a"
        assert record["attempts"] == "1"

        # Held while it runs, through every fenced update; it leaves the list in the very script that
        # writes its end, so a finished job is never left listed nor a listed job lost in between.
        assert await store.enter_stage(job_id, "worker-a", JobState.reconstructing_3d, "meshing", 40)
        assert await redis.lrange(a.processing_key, 0, -1) == [job_id]
        assert await store.finish(job_id, "worker-a", JobState.completed, asset_path="/a.glb")
        assert await redis.lrange(a.processing_key, 0, -1) == []
        assert await redis.lrange(keys.QUEUE, 0, -1) == []
        assert (await store.raw(job_id))["state"] == "completed"

    scenario(redis_server, body)


def test_jobs_of_a_worker_whose_lease_expired_are_requeued_first_in_line(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", SHORT_LEASE)
        stranded = await store.create("prompt", REQUEST)
        waiting = [await store.create("prompt", REQUEST) for _ in range(2)]
        assert await take(a, store) == stranded
        assert await redis.sismember(keys.WORKERS, "worker-a")

        await wait_for_lease_to_expire(redis, "worker-a")  # worker A died: no more heartbeats
        b = await worker(redis, "worker-b", LONG_LEASE)
        assert await b.reap(TERMINAL) == 1

        # Back at the taking (right) end, ahead of the jobs that were queued after it.
        assert await redis.lrange(keys.QUEUE, 0, -1) == [waiting[1], waiting[0], stranded]
        assert await redis.lrange(a.processing_key, 0, -1) == []
        assert not await redis.sismember(keys.WORKERS, "worker-a")
        record = await store.raw(stranded)
        assert record["state"] == "queued"
        assert record["owner"] == ""
        assert record["progress"] == "0"
        assert "requeued" in record["message"]

        assert await b.claim(timeout=1.0) == stranded
        assert await store.claim(stranded, "worker-b") is Claim.run
        assert (await store.raw(stranded))["attempts"] == "2"
        assert await b.reap(TERMINAL) == 0  # nothing is requeued twice

    scenario(redis_server, body)


def test_live_worker_jobs_are_never_reaped(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", 0.5)
        job_id = await store.create("prompt", REQUEST)
        await take(a, store)
        before = await store.raw(job_id)

        b = await worker(redis, "worker-b", LONG_LEASE)
        # A keeps beating for three of its lease periods while B reaps over and over.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            await a.heartbeat()
            assert await b.reap(TERMINAL) == 0
            await asyncio.sleep(0.1)

        assert await redis.lrange(a.processing_key, 0, -1) == [job_id]
        assert await redis.lrange(keys.QUEUE, 0, -1) == []
        assert await redis.sismember(keys.WORKERS, "worker-a")
        assert await store.raw(job_id) == before
        assert await store.is_still_mine(job_id, "worker-a")

    scenario(redis_server, body)


def test_stale_worker_cannot_advance_a_job_taken_over_by_another(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", SHORT_LEASE)
        job_id = await store.create("prompt", REQUEST)
        await take(a, store)

        await wait_for_lease_to_expire(redis, "worker-a")  # A stalls (or its network does) ...
        b = await worker(redis, "worker-b", LONG_LEASE)
        assert await b.reap(TERMINAL) == 1
        assert await take(b, store) == job_id  # ... and B takes the job over.
        taken_over = await store.raw(job_id)
        assert taken_over["owner"] == "worker-b"
        assert taken_over["attempts"] == "2"

        # A wakes up and tries to carry on: every write is refused and changes nothing.
        assert not await store.is_still_mine(job_id, "worker-a")
        assert not await store.enter_stage(job_id, "worker-a", JobState.reconstructing_3d, "meshing", 40)
        assert not await store.update(
            job_id, "worker-a", state=JobState.completed.value, asset_path="/stale.glb", owner=""
        )
        assert not await store.update(job_id, "worker-a", state=JobState.failed.value, message="stale")
        assert await store.raw(job_id) == taken_over

        # The new owner still can.
        assert await store.enter_stage(job_id, "worker-b", JobState.reconstructing_3d, "meshing", 40)
        assert (await store.raw(job_id))["state"] == "reconstructing_3d"

    scenario(redis_server, body)


def test_worker_that_outlived_its_lease_is_still_reaped_when_it_dies_later(
    redis_server: RedisServer,
) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", SHORT_LEASE)
        first = await store.create("prompt", REQUEST)
        await take(a, store)
        await wait_for_lease_to_expire(redis, "worker-a")  # A stalls longer than its lease ...
        b = await worker(redis, "worker-b", LONG_LEASE)
        assert await b.reap(TERMINAL) == 1
        assert await take(b, store) == first

        await a.heartbeat()  # ... then recovers: its housekeeping beats again, its slots take jobs.
        second = await store.create("prompt", REQUEST)
        assert await take(a, store) == second

        await wait_for_lease_to_expire(redis, "worker-a")  # A dies for good, holding the second job.
        assert await b.reap(TERMINAL) == 1, "the second job is stranded in A's processing list"
        assert await redis.lrange(keys.QUEUE, 0, -1) == [second]

    scenario(redis_server, body)


def test_finished_jobs_are_not_requeued(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", SHORT_LEASE)
        jobs = [await store.create("prompt", REQUEST) for _ in range(4)]
        completed, failed, cancelled, deleted = [await take(a, store) for _ in jobs]
        assert await store.update(completed, "worker-a", state="completed", asset_path="/a.glb", owner="")
        assert await store.update(failed, "worker-a", state="failed", message="boom", owner="")
        await store.cancel(cancelled)
        await redis.delete(keys.job(deleted))
        # A dies before acknowledging any of them.
        assert len(await redis.lrange(a.processing_key, 0, -1)) == 4
        before = {job_id: await store.raw(job_id) for job_id in (completed, failed, cancelled)}

        await wait_for_lease_to_expire(redis, "worker-a")
        b = await worker(redis, "worker-b", LONG_LEASE)
        assert await b.reap(TERMINAL) == 0

        assert await redis.lrange(keys.QUEUE, 0, -1) == []
        assert await redis.lrange(a.processing_key, 0, -1) == []
        assert not await redis.sismember(keys.WORKERS, "worker-a")
        assert {job_id: await store.raw(job_id) for job_id in before} == before
        assert not await redis.exists(keys.job(deleted))

    scenario(redis_server, body)


def test_cancel_removes_a_queued_job_from_the_queue(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        doomed, other = [await store.create("prompt", REQUEST) for _ in range(2)]
        assert await redis.lrange(keys.QUEUE, 0, -1) == [other, doomed]

        await store.cancel(doomed)
        assert await redis.lrange(keys.QUEUE, 0, -1) == [other]
        record = await store.raw(doomed)
        assert record["state"] == "cancelled"
        assert record["owner"] == ""
        assert "cancelled" in record["message"]

        a = await worker(redis, "worker-a", LONG_LEASE)
        assert await a.claim(timeout=0.1) == other
        assert await a.claim(timeout=0.1) is None
        # Cancelled between the move off the queue and the claim: the dispatcher must not run it,
        # and the claim drops it from the processing list.
        await store.cancel(other)
        assert await store.claim(other, "worker-a") is Claim.finished
        assert (await store.raw(other))["attempts"] == "0"
        assert await redis.lrange(a.processing_key, 0, -1) == []

        with pytest.raises(NotFound):
            await store.cancel("no-such-job")

    scenario(redis_server, body)


def test_cancel_of_finished_job_raises_conflict(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", LONG_LEASE)
        job_id = await store.create("prompt", REQUEST)
        await take(a, store)
        assert await store.update(job_id, "worker-a", state="completed", asset_path="/a.glb", owner="")
        before = await store.raw(job_id)

        with pytest.raises(Conflict, match="already completed"):
            await store.cancel(job_id)
        assert await store.raw(job_id) == before

        await store.cancel(other := await store.create("prompt", REQUEST))
        with pytest.raises(Conflict, match="already cancelled"):
            await store.cancel(other)

    scenario(redis_server, body)


def test_clean_shutdown_hands_unfinished_jobs_back(redis_server: RedisServer) -> None:
    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        a = await worker(redis, "worker-a", LONG_LEASE)
        running, finished, waiting = [await store.create("prompt", REQUEST) for _ in range(3)]
        assert await take(a, store) == running
        assert await take(a, store) == finished
        assert await store.update(finished, "worker-a", state="completed", asset_path="/a.glb", owner="")

        assert await a.release(TERMINAL) == 1

        # At once, not after the lease: the unfinished job is first in line again, the lease is gone.
        assert await redis.lrange(keys.QUEUE, 0, -1) == [waiting, running]
        assert await redis.lrange(a.processing_key, 0, -1) == []
        assert not await redis.exists(keys.worker_alive("worker-a"))
        assert not await redis.sismember(keys.WORKERS, "worker-a")
        record = await store.raw(running)
        assert (record["state"], record["owner"]) == ("queued", "")
        assert (await store.raw(finished))["state"] == "completed"

        b = await worker(redis, "worker-b", LONG_LEASE)
        assert await take(b, store) == running
        assert (await store.raw(running))["attempts"] == "2"

    scenario(redis_server, body)


# --- Real dispatcher processes, killed or stopped in the middle of a job -----------------------------

STACK_DB = 5


@pytest.fixture(scope="module")
def stack(fleet: Fleet) -> Iterator[Stack]:
    """An orchestrator API on its own Redis database; each test starts its own dispatchers."""
    own = start_stack(
        fleet,
        "queue",
        STACK_DB,
        MESHFORGE_LEASE_SECONDS="2",
        MESHFORGE_REAP_INTERVAL_SECONDS="0.5",
        MESHFORGE_DISPATCHER_CONCURRENCY="2",
    )
    yield own
    own.stop()


@pytest.fixture
def dispatchers(stack: Stack) -> Iterator[Callable[..., DispatcherProcess]]:
    """Starts dispatchers for one test (on an emptied database) and stops them all after it."""
    with stack.redis_client() as client:
        client.flushdb()
    started: list[DispatcherProcess] = []

    def start(**extra: str) -> DispatcherProcess:
        started.append(stack.start_dispatcher(**extra))
        return started[-1]

    yield start
    for dispatcher in started:
        dispatcher.stop(signal.SIGKILL)


def submit_torus(api: httpx.Client) -> str:
    response = api.post("/3d/generate", json={"prompt": "a red torus", "quality_tier": "high", "seed": 3})
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def assert_valid_glb(api: httpx.Client, job_id: str, folder: Path) -> None:
    path = download(api, job_id, folder)
    assert path.suffix == ".glb"
    assert path.read_bytes()[:4] == b"glTF"
    mesh = load(path)
    assert len(mesh.faces) > 100


def test_job_whose_dispatcher_is_killed_is_finished_by_another(
    stack: Stack, dispatchers: Callable[..., DispatcherProcess], tmp_path: Path
) -> None:
    first = dispatchers()
    with httpx.Client(base_url=stack.api, timeout=30) as api, stack.redis_client() as redis:
        job_id = submit_torus(api)
        wait_for_state(api, job_id, {"reconstructing_3d"})
        first.stop(signal.SIGKILL)
        assert first.process.popen.returncode == -signal.SIGKILL

        # The dead dispatcher still holds the job; nothing else touched it.
        assert redis.lrange(keys.processing(first.worker_id), 0, -1) == [job_id]
        assert redis.hget(keys.job(job_id), "owner") == first.worker_id
        assert api.get(f"/3d/status/{job_id}").json()["state"] == "reconstructing_3d"

        second = dispatchers()
        status = wait_for_end(api, job_id, timeout=120)
        assert status["state"] == "completed", f"{status['message']}\n{stack.logs()}"
        assert status["attempts"] == 2
        assert_valid_glb(api, job_id, tmp_path)

        assert first.worker_id not in redis.smembers(keys.WORKERS)
        assert second.worker_id in redis.smembers(keys.WORKERS)
        assert not redis.exists(keys.processing(first.worker_id))
        assert redis.llen(keys.QUEUE) == 0


def test_stopping_a_dispatcher_cleanly_requeues_its_jobs_at_once(
    stack: Stack, dispatchers: Callable[..., DispatcherProcess], tmp_path: Path
) -> None:
    # With a 60 s lease, only the clean hand-back can put the job back in line within the test.
    first = dispatchers(MESHFORGE_LEASE_SECONDS=str(LONG_LEASE))
    with httpx.Client(base_url=stack.api, timeout=30) as api, stack.redis_client() as redis:
        job_id = submit_torus(api)
        wait_for_state(api, job_id, {"reconstructing_3d"})
        stopping = time.monotonic()
        first.stop(signal.SIGTERM, timeout=20)
        took = time.monotonic() - stopping
        assert first.process.popen.returncode == 0, first.process.tail()
        assert took < LONG_LEASE / 4, f"the dispatcher took {took:.1f} s to stop"

        # Back in line the moment the dispatcher is gone, not when its lease would have run out.
        status = api.get(f"/3d/status/{job_id}").json()
        assert status["state"] == "queued", status
        assert status["attempts"] == 1
        assert status["message"] == RELEASED_MESSAGE  # and the attempt is not counted against the job
        assert redis.hget(keys.job(job_id), "released") == "1"
        assert redis.lrange(keys.QUEUE, 0, -1) == [job_id]
        assert redis.hget(keys.job(job_id), "owner") == ""
        assert not redis.exists(keys.processing(first.worker_id))
        assert not redis.exists(keys.worker_alive(first.worker_id))
        assert first.worker_id not in redis.smembers(keys.WORKERS)

        dispatchers()
        status = wait_for_end(api, job_id, timeout=120)
        assert status["state"] == "completed", f"{status['message']}\n{stack.logs()}"
        assert status["attempts"] == 2
        assert_valid_glb(api, job_id, tmp_path)
