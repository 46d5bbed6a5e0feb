"""Retention: expired jobs and their files are deleted, fresh ones kept; unused old uploads go, used
ones stay; two sweepers at once are safe; a full disk is a typed error the job shows.

The sweeper runs against a real redis-server and a temporary data folder; the last test runs a real
dispatcher (on the session fleet's stage services) with a short retention and watches its job vanish.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.asyncio import Redis

import meshforge.storage as storage_module
from meshforge import redis_keys as keys
from meshforge.errors import StorageFull
from meshforge.http import error_from_response
from meshforge.schemas import JobState
from meshforge.service import service_app
from meshforge.settings import DispatcherSettings
from meshforge.storage import Storage, atomic_write_bytes
from orchestrator.jobs import TERMINAL, JobStore
from orchestrator.queue import ReliableQueue
from orchestrator.retention import Sweeper
from tests.fleet import Fleet, RedisServer, start_stack, wait_for_end
from tests.fleet import redis_scenario as scenario

REQUEST = {"prompt": "a red cube", "output_format": "glb", "quality_tier": "standard", "seed": 1}
DAY = 86400.0
STACK_DB = 9


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer.start(tmp_path_factory.mktemp("retention-redis"))
    yield running
    running.process.stop()


def settings_for(data: Path, **overrides: float) -> DispatcherSettings:
    values = {"job_retention_seconds": DAY, "upload_retention_seconds": DAY, "retention_batch": 500}
    return DispatcherSettings(data_dir=data, **{**values, **overrides})


def job_files(storage: Storage, job_id: str) -> list[Path]:
    files = [
        storage.asset_path(job_id, ".glb"),
        storage.preview_path(job_id),
        storage.job_inputs(job_id) / "views" / "00-front.png",
        storage.job_cache(job_id) / "reconstruction.glb",
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return files


async def ended(store: JobStore, queue: ReliableQueue, state: JobState) -> str:
    """A job taken, run and ended ``state`` the way a dispatcher does it."""
    job_id = await store.create("prompt", REQUEST, api_key="studio-a")
    assert await queue.claim(timeout=1.0) == job_id
    await store.claim(job_id, queue.worker_id)
    await store.enter_stage(job_id, queue.worker_id, JobState.generating_images, "drawing", 5)
    if state is JobState.cancelled:
        await store.cancel(job_id)
        await queue.settle(job_id, TERMINAL)  # what the dispatcher does on noticing
    else:
        await store.finish(job_id, queue.worker_id, state, message="done")
    return job_id


async def backdate(redis: Redis, job_id: str, seconds: float) -> None:
    """Make the job look as if it ended ``seconds`` ago."""
    assert await redis.zadd(keys.JOBS_ENDED, {job_id: time.time() - seconds}, xx=True) == 0


async def mentions(redis: Redis, job_id: str) -> list[str]:
    """Every Redis key naming the job: its hash, and any sorted set or list holding its id."""
    found = []
    for name in await redis.keys("*"):
        kind = await redis.type(name)
        if (
            name == keys.job(job_id)
            or (kind == "zset" and await redis.zscore(name, job_id) is not None)
            or (kind == "list" and job_id in await redis.lrange(name, 0, -1))
        ):
            found.append(name)
    return found


def test_expired_jobs_and_their_files_are_deleted_and_fresh_ones_kept(
    server: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    storage = Storage(settings)

    async def body(redis: Redis) -> None:
        store, queue = JobStore(redis), ReliableQueue(redis, "worker-a", 60)
        await queue.register()
        old = [await ended(store, queue, state) for state in (JobState.completed, JobState.failed)]
        old.append(await ended(store, queue, JobState.cancelled))
        fresh = await ended(store, queue, JobState.completed)
        finished_minutes_ago = await ended(store, queue, JobState.completed)
        running = await store.create("prompt", REQUEST, api_key="studio-a")
        files = {
            job_id: job_files(storage, job_id) for job_id in [*old, fresh, finished_minutes_ago, running]
        }
        for job_id in old:
            await backdate(redis, job_id, DAY + 60)
        await backdate(redis, finished_minutes_ago, 120)

        report = await Sweeper(redis, settings, storage).sweep()

        assert sorted(report.jobs) == sorted(old)
        for job_id in old:
            assert await mentions(redis, job_id) == []
            assert not any(path.exists() for path in files[job_id]), job_id
            assert not storage.job_inputs(job_id).exists() and not storage.job_cache(job_id).exists()
        assert report.caches == [finished_minutes_ago]  # its raw mesh is of no use any more
        assert [p.exists() for p in files[finished_minutes_ago]] == [True, True, True, False]
        for job_id in (fresh, running):  # fresh: ended a moment ago (the cache's grace); running: live
            assert all(path.exists() for path in files[job_id])
            assert (await store.raw(job_id))["job_id"] == job_id
        listed, total = await store.list(0, 20, None, "studio-a")
        assert total == 3 and {job.job_id for job in listed} == {fresh, finished_minutes_ago, running}

    scenario(server, body)


def test_old_unused_uploads_are_removed_and_used_or_fresh_ones_kept(
    server: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    storage = Storage(settings)
    uploads = storage.inputs / "uploads"

    def upload(name: str, age: float) -> Path:
        folder = uploads / name
        folder.mkdir(parents=True)
        (folder / "00.png").write_bytes(b"x")
        os.utime(folder, (time.time() - age, time.time() - age))
        return folder

    async def body(redis: Redis) -> None:
        store = JobStore(redis)
        unused, used, used_absolute, fresh = (
            upload(n, a)
            for n, a in [("a" * 32, 2 * DAY), ("b" * 32, 2 * DAY), ("c" * 32, 2 * DAY), ("d" * 32, 60)]
        )
        await redis.set(keys.upload(unused.name), "studio-a")
        await store.create("images", {"image_paths": [f"uploads/{used.name}/00.png"]})
        await store.create("images", {"image_paths": [str(used_absolute / "00.png")]})
        done = await store.create("images", {"image_paths": [f"uploads/{unused.name}/00.png"]})
        await store.cancel(done)  # a finished job does not keep its upload

        report = await Sweeper(redis, settings, storage).sweep()

        assert report.uploads == [unused.name]
        assert not unused.exists() and not await redis.exists(keys.upload(unused.name))
        assert used.exists() and used_absolute.exists() and fresh.exists()

    scenario(server, body)


def test_two_sweepers_at_once_delete_each_job_once(server: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    storage = Storage(settings)

    async def body(redis: Redis) -> None:
        store, queue = JobStore(redis), ReliableQueue(redis, "worker-a", 60)
        await queue.register()
        expired = [await ended(store, queue, JobState.completed) for _ in range(300)]
        for job_id in expired:
            job_files(storage, job_id)
            await backdate(redis, job_id, 2 * DAY)
        other = Redis.from_url(server.url, decode_responses=True)
        try:
            # Without the lock, both run every step at once: still each job is deleted exactly once.
            a, b = (
                Sweeper(redis, settings, storage, use_lock=False),
                Sweeper(other, settings, storage, use_lock=False),
            )
            first, second = await asyncio.gather(a.sweep(), b.sweep())
            assert not set(first.jobs) & set(second.jobs)
            assert sorted(first.jobs + second.jobs) == sorted(expired)
            assert await redis.zcard(keys.JOBS_BY_TIME) == 0 and not list((storage.outputs).iterdir())
            # With the lock (the default), the second sweeper stands aside.
            reports = await asyncio.gather(Sweeper(redis, settings).sweep(), Sweeper(other, settings).sweep())
            assert sorted(r.locked_out for r in reports) == [False, True]
            assert not await redis.exists(keys.RETENTION_LOCK)  # released
        finally:
            await other.aclose()

    scenario(server, body)


def test_a_sweep_deletes_at_most_one_batch_oldest_first(server: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, retention_batch=50)

    async def body(redis: Redis) -> None:
        store, queue = JobStore(redis), ReliableQueue(redis, "worker-a", 60)
        await queue.register()
        expired = [await ended(store, queue, JobState.failed) for _ in range(120)]
        for age, job_id in enumerate(reversed(expired)):
            await backdate(redis, job_id, 2 * DAY + age)
        sweeper = Sweeper(redis, settings)
        sizes = [len((await sweeper.sweep()).jobs) for _ in range(4)]
        assert sizes == [50, 50, 20, 0]

    scenario(server, body)


def test_keep_forever_deletes_no_job(server: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, job_retention_seconds=0, upload_retention_seconds=0)

    async def body(redis: Redis) -> None:
        store, queue = JobStore(redis), ReliableQueue(redis, "worker-a", 60)
        await queue.register()
        job_id = await ended(store, queue, JobState.completed)
        await backdate(redis, job_id, 365 * DAY)
        assert (await Sweeper(redis, settings).sweep()).jobs == []
        assert await store.raw(job_id)

    scenario(server, body)


# --- a full disk --------------------------------------------------------------------------------------


def test_a_full_disk_is_storage_full_and_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "asset.glb"
    target.write_bytes(b"the previous asset")

    def no_space(_: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_module.os, "fsync", no_space)
    with pytest.raises(StorageFull) as raised:
        atomic_write_bytes(target, b"new bytes" * 1000)
    assert raised.value.message.startswith("no space left on the server (writing asset.glb)")
    assert target.read_bytes() == b"the previous asset"
    assert [p.name for p in tmp_path.iterdir()] == ["asset.glb"]  # no temporary file left


def test_a_full_disk_anywhere_a_service_writes_answers_507_and_becomes_storage_full_again() -> None:
    app: FastAPI = service_app("test")

    @app.post("/write")
    async def write() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/meshforge/outputs/abc.glb")

    with TestClient(app) as client:
        response = client.post("/write")
    assert response.status_code == 507
    assert response.json()["code"] == "storage_full"
    assert "/srv" not in response.json()["detail"]  # the file's name only, never the server's paths
    error = error_from_response(httpx.Response(507, json=response.json()), "postprocess-service")
    assert isinstance(error, StorageFull)
    assert error.message.startswith("no space left on the server")


# --- a real dispatcher --------------------------------------------------------------------------------


@pytest.mark.fleet
def test_a_dispatcher_sweeps_its_finished_jobs_away(fleet: Fleet) -> None:
    stack = start_stack(
        fleet,
        "retention",
        STACK_DB,
        MESHFORGE_JOB_RETENTION_SECONDS="2",
        MESHFORGE_RETENTION_SWEEP_SECONDS="0.5",
    )
    try:
        stack.start_dispatcher()
        with httpx.Client(base_url=stack.api, timeout=30) as api:
            job_id = api.post("/3d/generate", json=REQUEST).json()["job_id"]
            assert wait_for_end(api, job_id)["state"] == "completed"
            outputs = fleet.data_dir / "outputs"
            assert list(outputs.glob(f"{job_id}.*"))
            deadline = time.monotonic() + 20
            while api.get(f"/3d/status/{job_id}").status_code != 404:
                assert time.monotonic() < deadline, "the finished job was never swept"
                time.sleep(0.2)
            assert list(outputs.glob(f"{job_id}.*")) == []
            assert not (fleet.data_dir / "cache" / "jobs" / job_id).exists()
            assert not (fleet.data_dir / "inputs" / "jobs" / job_id).exists()
            assert api.get("/3d/jobs").json()["total"] == 0
    finally:
        stack.stop()
