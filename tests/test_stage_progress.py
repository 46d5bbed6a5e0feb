"""Progress within stages: while a stage runs, the dispatcher asks the replica doing the work how far it
has got and writes the job's progress, message and ``stage_progress``; the status and the event stream
show them, progress never goes backwards, and an ended job has no count.

Against a real fleet (the high tier's offline job: carving and post-processing take seconds), and the
dispatcher's follower (orchestrator/stage_progress.py) against a real redis-server of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.http import ReplicaPool
from meshforge.schemas import JobState
from orchestrator import stage_progress
from orchestrator.jobs import JobStore
from orchestrator.stage_progress import ProgressFollower
from orchestrator.stages import STAGES
from tests.fleet import Fleet, RedisServer, free_port, redis_scenario, wait_for_end

pytestmark = pytest.mark.fleet

STAGE_STARTS = [stage.progress for stage in STAGES] + [100]  # 5, 40, 80, then the end
HIGH = {"prompt": "a red cube", "quality_tier": "high"}
JOB = "0123456789abcdef0123456789abcdef"


def read_events(client: httpx.Client, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every (event, data) of the job's stream, read until the server ends it."""
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/3d/events/{job_id}", timeout=120) as answer:
        assert answer.status_code == 200, answer.read()
        name = ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def between_stage_starts(progress: int) -> bool:
    return any(start < progress < following for start, following in itertools.pairwise(STAGE_STARTS))


class StatusPoller(threading.Thread):
    """Reads the job's status over and over until it ends (what a client polling /3d/status sees)."""

    def __init__(self, base_url: str, job_id: str) -> None:
        super().__init__(daemon=True)
        self.base_url, self.job_id = base_url, job_id
        self.seen: list[dict[str, Any]] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while True:
                status = client.get(f"/3d/status/{self.job_id}").json()
                self.seen.append(status)
                if status["state"] in ("completed", "failed", "cancelled"):
                    return
                threading.Event().wait(0.1)


def test_a_running_stage_shows_its_count_and_progress_only_moves_forward(
    fleet: Fleet, api: httpx.Client
) -> None:
    job_id = api.post("/3d/generate", json=HIGH).json()["job_id"]
    poller = StatusPoller(fleet.api, job_id)
    poller.start()
    events = read_events(api, job_id)
    poller.join(120)

    summaries = [data for name, data in events if name in ("state", "progress")]
    assert [d["progress"] for d in summaries] == sorted(d["progress"] for d in summaries)
    within = [d for name, d in events if name == "progress" and between_stage_starts(d["progress"])]
    assert within, f"no progress within a stage: {[(n, d.get('progress')) for n, d in events]}"
    for data in within:
        count = data["stage_progress"]
        assert count is not None and 0 <= count["done"] <= count["total"] and count["unit"]
        assert f": {count['done']} of {count['total']} {count['unit']}" in data["message"]
    assert all(d["stage_progress"] is None for name, d in events if name == "state"), (
        "a stage starts uncounted"
    )
    end = events[-1][1]
    assert events[-1][0] == "end" and end["state"] == "completed" and end["stage_progress"] is None

    polled = [status["progress"] for status in poller.seen]
    assert polled == sorted(polled), "the status's progress never goes backwards"
    counted = [s for s in poller.seen if s["stage_progress"] is not None]
    assert counted and all(between_stage_starts(s["progress"]) for s in counted)
    final = wait_for_end(api, job_id)
    assert final["progress"] == 100 and final["stage_progress"] is None


@pytest.mark.parametrize(
    "service", ["MESHFORGE_IMAGE_SERVICE_URLS", "MESHFORGE_RECONSTRUCTION_SERVICE_URLS",
                "MESHFORGE_POSTPROCESS_SERVICE_URLS", "MESHFORGE_FLUX_SERVICE_URLS"],
)  # fmt: skip
def test_every_stage_service_says_a_job_it_does_not_run_is_not_running(fleet: Fleet, service: str) -> None:
    base = fleet.env[service].split(",")[0]
    answer = httpx.get(f"{base}/work/{JOB}/progress", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"running": False, "done": 0, "total": 0, "unit": ""}


# --- the dispatcher's follower, against a real Redis ---------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer.start(tmp_path_factory.mktemp("progress-redis"))
    yield server
    server.process.stop()


def scripted_pool(answers: list[httpx.Response]) -> tuple[ReplicaPool, list[str]]:
    """An image-service pool whose one replica answers the progress route with ``answers`` in turn (the
    last one again once they run out)."""
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return answers[min(len(asked), len(answers)) - 1]

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return ReplicaPool("image-service", ["http://image-0"], client), asked


def counted(done: int, total: int, unit: str = "views") -> httpx.Response:
    return httpx.Response(200, json={"running": True, "done": done, "total": total, "unit": unit})


async def follow_for(follower: ProgressFollower, looks: int) -> None:
    stop = asyncio.Event()
    task = asyncio.ensure_future(follower.follow(stop))
    await asyncio.sleep(looks * stage_progress.PROGRESS_SECONDS + 0.2)
    stop.set()
    await asyncio.wait_for(task, 5)


def test_the_follower_writes_each_new_count_forward_only_and_capped_below_the_next_stage(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage_progress, "PROGRESS_SECONDS", 0.05)
    answers = [
        httpx.Response(200, json={"running": True}),  # nothing counted yet: nothing written
        counted(2, 8),
        counted(2, 8),  # the same count: not written again
        counted(1, 8),  # the work started over elsewhere: the message says so, progress stays
        httpx.Response(404, json={"detail": "no route", "code": "not_found"}),  # skipped
        counted(8, 8),
    ]
    pool, asked = scripted_pool(answers)
    image_stage = STAGES[0]

    async def body(redis: Redis) -> list[dict[str, str]]:
        store = JobStore(redis)
        job_id = await store.create("prompt", {"prompt": "a red cube", "quality_tier": "standard"})
        await redis.hset(keys.job(job_id), "owner", "me")
        message = "generating 8 views of the prompt"
        assert await store.enter_stage(job_id, "me", image_stage.state, message, image_stage.progress)
        follower = ProgressFollower(store, "me", job_id, pool, image_stage, message)
        await follow_for(follower, 2)  # before the call names a replica, nobody is asked
        assert asked == []
        follower.held_by("http://image-0")
        await follow_for(follower, len(answers) + 2)
        status = await store.get(job_id)
        assert status.stage_progress is not None and status.stage_progress.done == 8
        assert await store.enter_stage(
            job_id, "me", JobState.reconstructing_3d, "reconstructing", 40, stage_progress=""
        )
        assert (await store.get(job_id)).stage_progress is None, "the next stage starts uncounted"
        history = await redis.xrange(keys.job_history(job_id))
        return [fields for _, fields in history]

    history = redis_scenario(redis_server, body)
    written = [(int(h["progress"]), h["message"]) for h in history if h["state"] == "generating_images"]
    assert written == [
        (5, "generating 8 views of the prompt"),
        (5 + 35 * 2 // 8, "generating 8 views of the prompt: 2 of 8 views drawn"),
        (5 + 35 * 2 // 8, "generating 8 views of the prompt: 1 of 8 views drawn"),
        (39, "generating 8 views of the prompt: 8 of 8 views drawn"),  # never the next stage's 40
    ]
    assert json.loads(history[-2]["stage_progress"]) == {
        "state": "generating_images", "done": 8, "total": 8, "unit": "views",
    }  # fmt: skip


def test_the_last_stage_goes_to_99_at_most() -> None:
    last = STAGES[-1]
    assert stage_progress.progress_span(last) == (last.progress, 99)
    assert stage_progress.progress_span(STAGES[0]) == (STAGES[0].progress, STAGES[1].progress - 1)


def test_the_follower_rides_out_redis_being_away_and_stops_when_the_job_is_not_its_own(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage_progress, "PROGRESS_SECONDS", 0.05)
    pool, asked = scripted_pool([counted(1, 4, "steps"), counted(2, 4, "steps"), counted(3, 4, "steps")])

    async def away() -> None:
        redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)  # nothing there
        follower = ProgressFollower(JobStore(redis), "me", JOB, pool, STAGES[1], "reconstructing")
        follower.held_by("http://image-0")
        await follow_for(follower, 3)  # returns when stopped, having raised nothing
        await redis.aclose()

    asyncio.run(away())
    assert len(asked) >= 2, "it kept asking while Redis was away"

    async def taken(redis: Redis) -> bool:
        store = JobStore(redis)
        job_id = await store.create("prompt", {"prompt": "a red cube", "quality_tier": "standard"})
        await redis.hset(keys.job(job_id), "owner", "another")
        follower = ProgressFollower(store, "me", job_id, pool, STAGES[1], "reconstructing")
        follower.held_by("http://image-0")
        task = asyncio.ensure_future(follower.follow(asyncio.Event()))  # never told to stop
        await asyncio.wait_for(task, 5)  # it stops by itself: the write was refused
        return (await store.get(job_id)).stage_progress is None

    assert redis_scenario(redis_server, taken)
