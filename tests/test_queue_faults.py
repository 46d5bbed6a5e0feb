"""The queue under faults: no job lost, none run twice, every job ends with a reason (issue 12).

Each test reproduces one failure mode found against a real redis-server and shows it fixed. The
stages are a fake service on loopback that counts its calls (tests/faults.py), so a test sees
exactly how many times each job's work was started. Dispatchers run in this process where a fault
must hit one exact call, and as real processes where they are SIGKILLed or Redis is restarted.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from meshforge import redis_keys as keys
from meshforge.errors import BackendError, MeshforgeError, ModelNotFound, StageUnavailable
from meshforge.http import ReplicaPool
from meshforge.schemas import JobState
from meshforge.stage_schemas import ReconstructRequest, ReconstructResponse, StageAnswer
from orchestrator.jobs import TERMINAL as TERMINAL_STATES
from orchestrator.jobs import Claim, JobStore
from orchestrator.pipeline import StageLog
from orchestrator.queue import RELEASED_MESSAGE, ReliableQueue
from orchestrator.stages import JobContext, Stage
from tests.faults import (
    HANG_UP,
    REQUEST,
    AofRedis,
    Call,
    FakeStage,
    in_process,
    running,
    stage_env,
    start_dispatcher_process,
    stop_process,
    wait_for_end,
    wait_for_end_sync,
)
from tests.fleet import redis_scenario as scenario

STAGES = ("/imagine/", "/reconstruct/", "/postprocess/")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AofRedis]:
    started = AofRedis(tmp_path_factory.mktemp("faults-redis")).start()
    yield started
    started.kill()


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[FakeStage]:
    fake = FakeStage(tmp_path)
    yield fake
    fake.close()


@pytest.fixture
def env(server: AofRedis, stage: FakeStage, tmp_path: Path) -> dict[str, str]:
    return stage_env(server, stage, tmp_path)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for popen in started:
        stop_process(popen)


def assert_ran_once(stage: FakeStage, job_id: str) -> None:
    counts = {prefix: len(stage.calls_to(prefix, job_id)) for prefix in STAGES}
    assert counts == dict.fromkeys(STAGES, 1), counts


def fail_once(target: object, name: str, *, after_call: bool = False) -> list[int]:
    """Make ``target.name`` raise a Redis connection error once, before (or after) really calling."""
    real = getattr(target, name)
    raised: list[int] = []

    async def flaky(*args: object, **kwargs: object) -> object:
        if raised:
            return await real(*args, **kwargs)
        raised.append(1)
        if after_call:  # the command ran, its answer was lost with the connection
            await real(*args, **kwargs)
        raise RedisConnectionError("Error 111 connecting to 10.9.8.7:6379. Connection refused.")

    setattr(target, name, flaky)
    return raised


# --- The claim: one script, only for a job in the caller's list, not finished, not another's --------


def test_claim_refuses_stale_finished_foreign_and_gone_jobs(server: AofRedis) -> None:
    async def body(client: Redis) -> None:
        store = JobStore(client)
        a = ReliableQueue(client, "worker-a", 60)
        job_id = await store.create("prompt", REQUEST)

        # Not in A's processing list (still queued, or reaped and taken over): refused, nothing changed.
        assert await store.claim(job_id, "worker-a") is Claim.stale
        assert (await store.raw(job_id))["attempts"] == "0"

        assert await a.claim(timeout=1) == job_id
        assert await store.claim(job_id, "worker-a") is Claim.run
        # A retried claim whose first answer was lost: still A's, no second attempt counted.
        assert await store.claim(job_id, "worker-a") is Claim.run
        assert (await store.raw(job_id))["attempts"] == "1"

        # Listed by B too (a duplicate) but owned by A: B refuses it and drops its copy.
        await client.lpush(keys.processing("worker-b"), job_id)
        assert await store.claim(job_id, "worker-b") is Claim.taken
        assert await client.llen(keys.processing("worker-b")) == 0

        await store.cancel(job_id)
        assert await store.claim(job_id, "worker-a") is Claim.finished
        assert await client.llen(a.processing_key) == 0

        await client.lpush(a.processing_key, "f" * 32)
        assert await store.claim("f" * 32, "worker-a") is Claim.gone
        assert await client.llen(a.processing_key) == 0

    scenario(server, body)


def test_the_claim_after_max_attempts_fails_the_job_naming_them(server: AofRedis) -> None:
    async def body(client: Redis) -> None:
        store = JobStore(client)
        a = ReliableQueue(client, "worker-a", 60)
        job_id = await store.create("prompt", REQUEST)
        await a.register()
        for attempt in (1, 2):
            assert await a.claim(timeout=1) == job_id
            assert await store.claim(job_id, "worker-a", max_attempts=2) is Claim.run
            await client.delete(keys.worker_alive("worker-a"))  # its dispatcher died: the lease lapsed
            assert await a.reap(TERMINAL_STATES) == 1, f"attempt {attempt}"
            await a.register()
        assert await a.claim(timeout=1) == job_id
        assert await store.claim(job_id, "worker-a", max_attempts=2) is Claim.exhausted
        record = await store.raw(job_id)
        assert record["state"] == "failed"
        assert record["message"] == "gave up after 2 attempts: the dispatcher running it stopped each time"
        assert (record["owner"], record["attempts"]) == ("", "2")
        assert await client.llen(a.processing_key) == 0
        assert await client.llen(keys.QUEUE) == 0

    scenario(server, body)


def test_clean_shutdowns_do_not_count_as_attempts_but_are_bounded(server: AofRedis) -> None:
    """An upgrade that restarts dispatchers is not the job's fault; a job handed back more than ten
    times on clean stops still ends, so nothing is requeued forever."""

    async def body(client: Redis) -> None:
        store = JobStore(client)
        a = ReliableQueue(client, "worker-a", 60)
        job_id = await store.create("prompt", REQUEST)
        for attempt in range(12):
            assert await a.claim(timeout=1) == job_id
            assert await store.claim(job_id, "worker-a", max_attempts=2) is Claim.run, attempt
            assert await a.release(TERMINAL_STATES) == 1
            record = await store.raw(job_id)
            assert record["state"] == "queued"
            assert record["message"] == RELEASED_MESSAGE
            await a.register()
        assert await a.claim(timeout=1) == job_id
        assert await store.claim(job_id, "worker-a", max_attempts=2) is Claim.exhausted
        record = await store.raw(job_id)
        assert (record["state"], record["attempts"], record["released"]) == ("failed", "12", "12")

    scenario(server, body)


# --- The paths: the dispatcher decides every stage's output, in the storage layout ------------------


def test_every_stage_is_sent_its_output_paths_in_the_storage_layout(
    server: AofRedis, stage: FakeStage, env: dict[str, str], tmp_path: Path
) -> None:
    """The fake stages refuse, as the real ones do, a request without its output path or with one
    outside the stage's folder; a job that completes was sent the layout of meshforge.storage."""

    async def body(client: Redis) -> None:
        store = JobStore(client)
        job_id = await store.create("prompt", REQUEST)
        async with running(in_process(client, env, "worker-a")):
            record = await wait_for_end(store, job_id)
        assert record["state"] == "completed", record["message"]
        (images,) = stage.calls_to("/imagine/", job_id)
        (mesh,) = stage.calls_to("/reconstruct/", job_id)
        (asset,) = stage.calls_to("/postprocess/", job_id)
        job_inputs = tmp_path / "inputs" / "jobs" / job_id
        assert images.body["output_dir"] == str(job_inputs)
        assert mesh.body["image_paths"] == [str(job_inputs / "views" / "00-front.png")]  # the images' answer
        assert mesh.body["output_path"] == str(tmp_path / "cache" / "jobs" / job_id / "reconstruction.glb")
        assert asset.body["mesh_path"] == mesh.body["output_path"]
        assert asset.body["output_path"] == str(tmp_path / "outputs" / f"{job_id}.glb")
        assert asset.body["preview_path"] == str(tmp_path / "outputs" / f"{job_id}.preview.png")

    scenario(server, body)


# --- (a) a Redis error right after BLMOVE never loses the job ---------------------------------------


@pytest.mark.parametrize(
    ("target", "name", "after_call"),
    [
        ("store", "claim", False),  # the claim never reached Redis
        ("store", "claim", True),  # the claim ran, its answer was lost
        ("store", "raw", False),  # the runner's first read (it used to sit outside any try)
        ("store", "finish", True),  # the job's end was written, its answer lost
    ],
)
def test_a_redis_error_after_blmove_does_not_lose_the_job(
    server: AofRedis, stage: FakeStage, env: dict[str, str], target: str, name: str, after_call: bool
) -> None:
    async def body(client: Redis) -> None:
        store = JobStore(client)
        dispatcher = in_process(client, env, "worker-a")
        raised = fail_once(
            dispatcher.runner.store if target == "store" else dispatcher.queue, name, after_call=after_call
        )
        job_id = await store.create("prompt", REQUEST)
        async with running(dispatcher):
            record = await wait_for_end(store, job_id)
            while await client.llen(dispatcher.queue.processing_key):
                await asyncio.sleep(0.05)
        assert raised, "the fault was never injected"
        assert record["state"] == "completed", record["message"]
        assert record["attempts"] == "1"
        assert_ran_once(stage, job_id)
        assert await client.llen(keys.QUEUE) == 0

    scenario(server, body)


def test_an_id_that_no_slot_holds_is_requeued_by_the_reconciliation(
    server: AofRedis, stage: FakeStage, env: dict[str, str]
) -> None:
    """The "stuck" case: an id left in a live dispatcher's list (a BLMOVE whose answer was lost, a
    runner that gave up) is never reaped, its lease being renewed; the dispatcher itself requeues it."""

    async def body(client: Redis) -> None:
        store = JobStore(client)
        dispatcher = in_process(client, env, "worker-a")
        job_id = await store.create("prompt", REQUEST)
        # Moved and claimed by this worker, then forgotten: no slot holds it.
        assert await dispatcher.queue.claim(timeout=1) == job_id
        assert await store.claim(job_id, "worker-a") is Claim.run
        started = time.monotonic()
        async with running(dispatcher):
            record = await wait_for_end(store, job_id, timeout=20)
        assert record["state"] == "completed", record["message"]
        assert record["attempts"] == "2"
        assert time.monotonic() - started < 5
        assert_ran_once(stage, job_id)
        assert await client.llen(dispatcher.queue.processing_key) == 0

    scenario(server, body)


def test_a_job_reaped_from_a_slot_that_still_runs_it_is_not_run_by_a_second_slot(
    server: AofRedis, stage: FakeStage, env: dict[str, str]
) -> None:
    """Found by the fault soak: a dispatcher whose lease lapsed during a Redis outage had its list
    reaped while a slot still ran the job; another of its slots took the job back off the queue and,
    ownership being per dispatcher, both slots ran it. The second slot now hands it back instead."""

    async def body(client: Redis) -> None:
        store = JobStore(client)
        dispatcher = in_process(client, env, "worker-a")
        job_id = await store.create("prompt", REQUEST)
        assert await dispatcher.queue.claim(timeout=1) == job_id
        assert await store.claim(job_id, "worker-a") is Claim.run
        dispatcher._running.add(job_id)  # a slot is running it ...
        await client.lrem(dispatcher.queue.processing_key, 0, job_id)  # ... when it is reaped:
        await client.hset(keys.job(job_id), mapping={"state": "queued", "owner": ""})
        await client.rpush(keys.QUEUE, job_id)

        await dispatcher._take_one()  # another slot of the same dispatcher takes it off the queue

        record = await store.raw(job_id)
        assert record["owner"] == "worker-a"  # back with the slot that runs it: its writes go on
        assert stage.calls_to("/", job_id) == []  # and the second slot ran nothing
        assert await client.lrange(dispatcher.queue.processing_key, 0, -1) == [job_id]

    scenario(server, body)


# --- (b) Redis restarted while a job is in a stage --------------------------------------------------


def test_a_redis_restart_mid_stage_neither_fails_nor_strands_the_job(
    tmp_path: Path, stage: FakeStage, processes: list[subprocess.Popen]
) -> None:
    own = AofRedis(tmp_path / "redis").start()
    try:
        answer = threading.Event()
        arrived = threading.Event()

        def behave(call: Call) -> None:
            if call.path.startswith("/reconstruct/"):
                arrived.set()
                answer.wait(30)  # answered while Redis is down: the dispatcher's writes must wait

        stage.behave = behave
        processes.append(start_dispatcher_process(stage_env(own, stage, tmp_path), tmp_path / "d.log"))
        job_id = asyncio.run(_create(own.url))
        assert arrived.wait(30), (tmp_path / "d.log").read_text()

        own.kill()  # SIGKILL: nothing but the append-only file survives
        time.sleep(1)
        answer.set()
        time.sleep(3)
        own.start()

        record = wait_for_end_sync(own, job_id, timeout=30)
        log = (tmp_path / "d.log").read_text()
        assert record["state"] == "completed", f"{record['message']}\n{log}"
        assert record["attempts"] == "1"
        assert "Error 111" not in record["message"]
        assert "Redis unreachable" in log
        assert_ran_once(stage, job_id)
        with own.client() as client:
            assert client.llen(keys.QUEUE) == 0
            assert client.keys("3d:processing:*") == [] or all(
                client.llen(key) == 0 for key in client.keys("3d:processing:*")
            )
    finally:
        own.kill()


async def _create(url: str) -> str:
    client = Redis.from_url(url, decode_responses=True)
    try:
        return await JobStore(client).create("prompt", REQUEST)
    finally:
        await client.aclose()


# --- (c) a stale dispatcher cannot claim a job another took over ------------------------------------


def test_a_stale_dispatcher_cannot_claim_the_job_another_took_over(
    server: AofRedis, stage: FakeStage, env: dict[str, str]
) -> None:
    async def body(client: Redis) -> None:
        store = JobStore(client)
        stale = in_process(client, {**env, "MESHFORGE_LEASE_SECONDS": "0.3"}, "worker-stale")
        await stale.queue.register()
        job_id = await store.create("prompt", REQUEST)
        # The stale dispatcher moves the job, then stalls past its lease before claiming it ...
        assert await stale.queue.claim(timeout=1) == job_id
        while await client.exists(keys.worker_alive("worker-stale")):
            await asyncio.sleep(0.02)

        # ... the other one reaps its list and runs the job to the end ...
        async with running(in_process(client, env, "worker-live")):
            record = await wait_for_end(store, job_id)
        assert record["state"] == "completed", record["message"]

        # ... and the stale one wakes up and carries on with its claim: refused, nothing runs.
        await stale._process(job_id)
        assert await store.claim(job_id, "worker-stale") is Claim.stale
        assert await store.raw(job_id) == record
        assert_ran_once(stage, job_id)

    scenario(server, body)


def test_a_dispatcher_stopped_past_its_lease_runs_no_further_stage(
    server: AofRedis, stage: FakeStage, env: dict[str, str], processes: list[subprocess.Popen], tmp_path: Path
) -> None:
    """Real processes: A is SIGSTOPped mid-stage, B takes the job over; A, continued, stops at once."""
    with server.client() as client:
        client.flushdb()
    first_call = threading.Event()

    def behave(call: Call) -> None:
        if call.path.startswith("/imagine/") and not first_call.is_set():
            first_call.set()
            time.sleep(2.5)  # A's call: answered after A was stopped and the job taken over

    stage.behave = behave
    a = start_dispatcher_process(env, tmp_path / "a.log")
    processes.append(a)
    job_id = asyncio.run(_create(server.url))
    assert first_call.wait(30), (tmp_path / "a.log").read_text()
    a.send_signal(signal.SIGSTOP)
    time.sleep(1.5)  # past A's 1 s lease
    processes.append(start_dispatcher_process(env, tmp_path / "b.log"))
    record = wait_for_end_sync(server, job_id, timeout=30)
    a.send_signal(signal.SIGCONT)
    time.sleep(1.5)  # A gets its stage answer now: its write is refused, it starts nothing more

    assert record["state"] == "completed", record["message"]
    assert record["attempts"] == "2"
    assert len(stage.calls_to("/imagine/", job_id)) == 2  # A's, abandoned, and B's
    assert len(stage.calls_to("/reconstruct/", job_id)) == 1
    assert len(stage.calls_to("/postprocess/", job_id)) == 1
    with server.client() as client:
        assert client.hgetall(f"job:{job_id}") == record


# --- (d) a poison job that kills its dispatcher ends failed after MAX_ATTEMPTS ----------------------


def test_a_job_that_kills_its_dispatcher_fails_after_max_attempts(
    server: AofRedis, stage: FakeStage, env: dict[str, str], processes: list[subprocess.Popen], tmp_path: Path
) -> None:
    with server.client() as client:
        client.flushdb()
    poison = asyncio.run(_create(server.url))
    leftover = tmp_path / "outputs" / f"{poison}.preview.png"  # what an attempt wrote before dying
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"\x89PNG")

    def behave(call: Call) -> tuple[int, dict] | None:
        if call.job_id == poison:
            for popen in processes:  # the stage call takes its dispatcher down, every time
                if popen.poll() is None:
                    popen.send_signal(signal.SIGKILL)
            return HANG_UP
        return None

    stage.behave = behave
    deadline = time.monotonic() + 60
    record: dict[str, str] = {}
    while record.get("state") not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"the poison job never ended: {record}"
        if all(popen.poll() is not None for popen in processes):
            processes.append(start_dispatcher_process(env, tmp_path / "d.log"))
        time.sleep(0.1)
        with server.client() as client:
            record = client.hgetall(f"job:{poison}")

    assert record["state"] == "failed"
    assert record["message"] == "gave up after 3 attempts: the dispatcher running it stopped each time"
    assert len(stage.calls_to("/imagine/", poison)) == 3
    assert not leftover.exists(), "the failed job's leftover output was kept"
    # The queue moves on: the next job runs on the dispatcher that refused the poison one.
    healthy = asyncio.run(_create(server.url))
    if all(popen.poll() is not None for popen in processes):
        processes.append(start_dispatcher_process(env, tmp_path / "d.log"))
    assert wait_for_end_sync(server, healthy, timeout=30)["state"] == "completed"


# --- (f) the job deadline, and messages that never leak internals ----------------------------------


def test_a_job_past_its_deadline_fails_saying_so(
    server: AofRedis, stage: FakeStage, env: dict[str, str]
) -> None:
    release = threading.Event()

    def behave(call: Call) -> None:
        if call.path.startswith("/reconstruct/"):
            release.wait(20)  # far longer than the job's 1 s deadline

    stage.behave = behave

    async def body(client: Redis) -> None:
        store = JobStore(client)
        dispatcher = in_process(client, {**env, "MESHFORGE_JOB_DEADLINE_SECONDS": "1"}, "worker-a")
        job_id = await store.create("prompt", REQUEST)
        started = time.monotonic()
        async with running(dispatcher):
            record = await wait_for_end(store, job_id, timeout=10)
        release.set()
        assert time.monotonic() - started < 5
        assert record["state"] == "failed"
        assert record["message"] == (
            "3D reconstruction failed: the job ran longer than its time limit of 1 s "
            "(MESHFORGE_JOB_DEADLINE_SECONDS)"
        )
        assert await client.llen(dispatcher.queue.processing_key) == 0

    scenario(server, body)


def test_an_unexpected_error_fails_the_job_without_its_internal_text(
    server: AofRedis, stage: FakeStage, env: dict[str, str]
) -> None:
    async def body(client: Redis) -> None:
        store = JobStore(client)
        dispatcher = in_process(client, env, "worker-a")

        real_stage = dispatcher.runner._stage

        async def broken(job: JobContext, stage: Stage, stage_log: StageLog) -> StageAnswer:
            if stage.state is JobState.reconstructing_3d:
                raise RuntimeError("cannot open /srv/meshforge/cache/x on 10.1.2.3")
            return await real_stage(job, stage, stage_log)

        dispatcher.runner._stage = broken  # type: ignore[method-assign]
        job_id = await store.create("prompt", REQUEST)
        async with running(dispatcher):
            record = await wait_for_end(store, job_id)
        assert record["state"] == "failed"
        assert record["message"] == (
            f"3D reconstruction failed: internal error; see the dispatcher log (job {job_id})"
        )

    scenario(server, body)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("stage_unavailable", "no flux-service replica could take the job within 120 s (2 busy)"),
        ("model_not_found", "TripoSR weights are missing under models/"),
    ],
)
def test_a_stage_503_that_is_not_busy_fails_the_job_with_the_stages_message(
    server: AofRedis, stage: FakeStage, env: dict[str, str], code: str, message: str
) -> None:
    def behave(call: Call) -> tuple[int, dict] | None:
        return (503, {"detail": message, "code": code}) if call.path.startswith("/imagine/") else None

    stage.behave = behave

    async def body(client: Redis) -> None:
        store = JobStore(client)
        job_id = await store.create("prompt", REQUEST)
        started = time.monotonic()
        async with running(in_process(client, env, "worker-a")):
            record = await wait_for_end(store, job_id)
        assert record["state"] == "failed"
        assert record["message"] == f"image stage failed: {message}"
        assert len(stage.calls_to("/imagine/", job_id)) == 1, "a stage's own error is not retried"
        assert time.monotonic() - started < 3, "treated as busy until the stage deadline"

    scenario(server, body)


# --- (e) typed transport errors in ReplicaPool -------------------------------------------------------


def pool_post(
    urls: list[str], data_dir: Path, *, deadline: float = 3.0, timeout: float = 0.5
) -> tuple[ReconstructResponse, str]:
    async def main() -> tuple[ReconstructResponse, str]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            pool = ReplicaPool(
                "reconstruction-service", urls, client, deadline_seconds=deadline, retry_seconds=0.05
            )
            job_id = "a" * 32
            body = ReconstructRequest(
                image_paths=[str(data_dir / "inputs" / "jobs" / job_id / "views" / "00-front.png")],
                job_id=job_id,
                output_path=str(data_dir / "cache" / "jobs" / job_id / "reconstruction.glb"),
            )
            return await pool.post("/reconstruct/mesh", body, ReconstructResponse)

    return asyncio.run(main())


@pytest.fixture
def other_stage(tmp_path: Path) -> Iterator[FakeStage]:
    fake = FakeStage(tmp_path)
    yield fake
    fake.close()


def slow(call: Call) -> None:
    time.sleep(1.5)  # longer than the client's 0.5 s read timeout


def hang_up(call: Call) -> tuple[int, dict]:
    return HANG_UP


@pytest.mark.parametrize("fault", [slow, hang_up], ids=["read-timeout", "remote-protocol-error"])
def test_a_replica_that_gives_no_answer_is_retried_on_another(
    stage: FakeStage, other_stage: FakeStage, fault: Callable[[Call], object]
) -> None:
    stage.behave = fault  # type: ignore[assignment]
    result, replica = pool_post([stage.url, other_stage.url], stage.data_dir)
    assert replica == other_stage.url
    assert result.faces == 12
    assert len(stage.calls_to("/reconstruct/")) == 1


@pytest.mark.parametrize("fault", [slow, hang_up], ids=["read-timeout", "remote-protocol-error"])
def test_a_stage_that_never_answers_is_unavailable_without_naming_its_address(
    stage: FakeStage, fault: Callable[[Call], object]
) -> None:
    stage.behave = fault  # type: ignore[assignment]
    with pytest.raises(StageUnavailable) as raised:
        pool_post([stage.url], stage.data_dir, deadline=1.0)
    message = raised.value.message
    assert message == (
        "no reconstruction-service replica could take the job within 1 s "
        "(0 busy, 1 unreachable or not answering)"
    )
    assert "127.0.0.1" not in message
    assert len(stage.calls_to("/reconstruct/")) >= 1


def test_only_the_busy_code_sends_the_call_to_another_replica(
    stage: FakeStage, other_stage: FakeStage
) -> None:
    stage.behave = lambda call: (503, {"detail": "working on another job", "code": "busy"})
    _, replica = pool_post([stage.url, other_stage.url], stage.data_dir)
    assert replica == other_stage.url


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            503,
            {"detail": "no flux replica answered", "code": "stage_unavailable"},
            StageUnavailable,
            "no flux replica answered",
        ),
        (503, {"detail": "weights missing", "code": "model_not_found"}, ModelNotFound, "weights missing"),
        (503, {"detail": "overloaded"}, BackendError, "reconstruction-service failed (503): overloaded"),
        (500, {"detail": "the mesh is empty", "code": "backend_error"}, BackendError, "the mesh is empty"),
    ],
)
def test_any_other_error_answer_is_the_stages_own_and_is_not_retried(
    stage: FakeStage,
    other_stage: FakeStage,
    status: int,
    body: dict,
    error: type[MeshforgeError],
    message: str,
) -> None:
    stage.behave = lambda call: (status, body)
    with pytest.raises(error) as raised:
        pool_post([stage.url, other_stage.url], stage.data_dir)
    assert type(raised.value) is error
    assert raised.value.message == message
    assert other_stage.calls_to("/reconstruct/") == []
