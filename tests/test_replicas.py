"""Replicas: a busy one says so (503 + Retry-After), callers go round it, and a dead one is skipped.

Runs against the fleet's real stage services. The orchestrator tests start an API and a dispatcher of
their own, on their own Redis database, configured with one replica that does not exist.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshforge.errors import StageUnavailable
from meshforge.http import ReplicaPool, make_client
from meshforge.stage_schemas import ReconstructRequest, ReconstructResponse
from tests.fleet import Fleet, Stack, free_port, start_stack, wait_for_end, wait_until

pytestmark = pytest.mark.fleet

# A visual hull this fine keeps a replica busy for seconds; the small one takes a fraction of one.
HEAVY_RESOLUTION = 192
SMALL_RESOLUTION = 32
STACK_DB = 6


def urls(fleet: Fleet, stage: str) -> list[str]:
    return fleet.env[f"MESHFORGE_{stage}_SERVICE_URLS"].split(",")


@pytest.fixture(scope="module")
def replicas(fleet: Fleet) -> list[str]:
    found = urls(fleet, "RECONSTRUCTION")
    assert len(found) >= 2, "these tests need two reconstruction replicas"
    return found


@dataclass(frozen=True)
class Views:
    """Normalised views drawn by the fleet's image-service, and the fleet's cache/ for their meshes."""

    image_paths: list[str]
    names: list[str]
    cache: Path


@pytest.fixture(scope="module")
def views(fleet: Fleet) -> Views:
    """Eight normalised canonical views of a red cube, drawn by the fleet's image-service."""
    job_id = uuid.uuid4().hex  # job ids are the orchestrator's form: 32 hex
    response = httpx.post(
        urls(fleet, "IMAGE")[0] + "/imagine/generate",
        json={
            "prompt": "a red cube",
            "num_views": 8,
            "image_size": 256,
            "seed": 1,
            "job_id": job_id,
            "output_dir": str(fleet.data_dir / "inputs" / "jobs" / job_id),  # the dispatcher's layout
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert len(result["image_paths"]) == 8
    return Views(result["image_paths"], result["views"], fleet.data_dir / "cache")


@pytest.fixture(scope="module")
def dead_url() -> Iterator[str]:
    """A loopback port that is bound but never listens: connections are refused, and no other process
    can take the port while the tests run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def reconstruction(views: Views, resolution: int) -> ReconstructRequest:
    job_id = uuid.uuid4().hex  # each request writes its own mesh file, where the dispatcher puts it
    return ReconstructRequest(
        image_paths=views.image_paths,
        views=views.names,
        resolution=resolution,
        job_id=job_id,
        output_path=str(views.cache / "jobs" / job_id / "reconstruction.glb"),
    )


def health(url: str) -> dict[str, Any]:
    response = httpx.get(url + "/health", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_free(url: str) -> None:
    wait_until(lambda: health(url)["busy"] is False, 60, f"{url} to be free")


@contextmanager
def busy_replica(url: str, views: Views) -> Iterator[Future[httpx.Response]]:
    """Keeps ``url`` busy with a heavy reconstruction; yields once the replica reports itself busy and
    returns once that reconstruction has succeeded."""
    wait_free(url)
    body = reconstruction(views, HEAVY_RESOLUTION).model_dump(mode="json")
    with ThreadPoolExecutor(1) as executor:
        heavy = executor.submit(httpx.post, url + "/reconstruct/mesh", json=body, timeout=300)
        wait_until(lambda: heavy.done() or health(url)["busy"] is True, 30, f"{url} to be busy")
        assert not heavy.done(), f"the heavy request ended before the test could use it: {heavy.result()}"
        yield heavy
        response = heavy.result(timeout=300)
    assert response.status_code == 200, response.text


def pool_post(
    pool_urls: list[str],
    body: ReconstructRequest,
    deadline: float = 60,
    only: list[str] | None = None,
) -> tuple[ReconstructResponse, str]:
    async def call() -> tuple[ReconstructResponse, str]:
        async with make_client(60) as client:
            pool = ReplicaPool(
                "reconstruction-service", pool_urls, client, deadline_seconds=deadline, retry_seconds=0.05
            )
            return await pool.post("/reconstruct/mesh", body, ReconstructResponse, only=only)

    return asyncio.run(call())


def test_busy_replica_answers_503_with_retry_after(replicas: list[str], views: Views) -> None:
    url = replicas[0]
    with busy_replica(url, views) as heavy:
        response = httpx.post(
            url + "/reconstruct/mesh",
            json=reconstruction(views, SMALL_RESOLUTION).model_dump(mode="json"),
            timeout=30,
        )
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        body = response.json()
        assert body["code"] == "busy"
        assert "busy" in body["detail"] and "reconstruction-service" in body["detail"]
        assert set(body) == {"detail", "code"}
        assert health(url)["busy"] is True or heavy.done()
    assert health(url)["busy"] is False


def test_pool_skips_a_busy_replica_and_uses_a_free_one(replicas: list[str], views: Views) -> None:
    busy, free = replicas[0], replicas[1]
    wait_free(free)
    with busy_replica(busy, views) as heavy:
        # A fresh pool starts its round at the first replica, which is busy.
        body = reconstruction(views, SMALL_RESOLUTION)
        result, replica = pool_post([busy, free], body)
        assert replica == free
        assert not heavy.done(), "the busy replica finished before the pool call: the test proved nothing"
    assert result.faces > 0
    assert result.mesh_path == body.output_path and Path(result.mesh_path).is_file()


def test_pool_skips_an_unreachable_replica(replicas: list[str], views: Views, dead_url: str) -> None:
    wait_free(replicas[1])
    result, replica = pool_post([dead_url, replicas[1]], reconstruction(views, SMALL_RESOLUTION))
    assert replica == replicas[1]
    assert result.faces > 0


def test_a_call_restricted_to_a_busy_replica_waits_for_it_rather_than_use_a_free_one(
    replicas: list[str], views: Views
) -> None:
    chosen, other = replicas[0], replicas[1]
    wait_free(other)
    with busy_replica(chosen, views) as heavy:
        result, replica = pool_post([other, chosen], reconstruction(views, SMALL_RESOLUTION), only=[chosen])
        assert heavy.done(), "the restricted call was answered while its replica was still busy"
    assert replica == chosen and result.faces > 0


def test_a_call_restricted_to_unreachable_replicas_goes_to_any_replica(
    replicas: list[str], views: Views, dead_url: str
) -> None:
    wait_free(replicas[1])
    result, replica = pool_post(
        [dead_url, replicas[1]], reconstruction(views, SMALL_RESOLUTION), only=[dead_url]
    )
    assert replica == replicas[1] and result.faces > 0


def test_pool_gives_up_with_a_clear_message_when_no_replica_answers(views: Views, dead_url: str) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", free_port()))
        second_dead = f"http://127.0.0.1:{other.getsockname()[1]}"
        with pytest.raises(StageUnavailable) as raised:
            pool_post([dead_url, second_dead], reconstruction(views, SMALL_RESOLUTION), deadline=0.5)
    message = raised.value.message
    assert "reconstruction-service" in message
    assert "2 unreachable" in message
    # The job's message is public: the replicas' internal addresses go to the log only.
    assert dead_url not in message and second_dead not in message


# --- The orchestrator with one of its reconstruction replicas down ----------------------------------


@pytest.fixture(scope="module")
def degraded(fleet: Fleet, replicas: list[str], dead_url: str) -> Iterator[Stack]:
    """An orchestrator and dispatcher whose first reconstruction replica does not exist."""
    stack = start_stack(
        fleet, "replicas", STACK_DB, MESHFORGE_RECONSTRUCTION_SERVICE_URLS=",".join([dead_url, *replicas])
    )
    try:
        stack.start_dispatcher()
        yield stack
    finally:
        stack.stop()


def test_orchestrator_finishes_jobs_when_a_replica_is_down(
    degraded: Stack, replicas: list[str], dead_url: str
) -> None:
    with httpx.Client(base_url=degraded.api, timeout=30) as api:
        response = api.post("/3d/generate", json={"prompt": "a green cube", "seed": 5})
        assert response.status_code == 200, response.text
        status = wait_for_end(api, response.json()["job_id"], timeout=120)
    assert status["state"] == "completed", f"{status['message']}\n{degraded.logs()}"
    # The record names a replica by its position in the stage's URL list, never by its internal URL.
    replica = status["stages"]["reconstructing_3d"]["detail"]["replica"]
    assert [dead_url, *replicas][replica] in replicas


STAGE_SERVICES = {
    "IMAGE": "image-service",
    "FLUX": "flux-service",
    "RECONSTRUCTION": "reconstruction-service",
    "POSTPROCESS": "postprocess-service",
}


def test_health_reports_backend_and_busy_for_every_stage_service(
    fleet: Fleet, degraded: Stack, replicas: list[str], dead_url: str
) -> None:
    answers: dict[str, dict[str, dict[str, Any]]] = {}
    for stage, service in STAGE_SERVICES.items():
        answers[service] = {}
        for url in urls(fleet, stage):
            answer = health(url)
            assert answer["service"] == service
            assert answer["status"] == "ok"
            assert isinstance(answer["backend"], str) and answer["backend"]
            assert isinstance(answer["busy"], bool)
            answers[service][url] = answer

    # The fleet's orchestrator lists every replica of every stage, each with its own answer.
    overall = health(fleet.api)
    assert overall["service"] == "orchestrator"
    assert overall["status"] == "ok"
    assert overall["detail"]["redis"] == "ok"
    stages = overall["detail"]["stages"]
    assert set(stages) == set(answers)
    for service, replies in answers.items():
        assert list(stages[service]) == list(replies)
        for url, reply in replies.items():
            listed = stages[service][url]
            assert (listed["service"], listed["status"], listed["backend"]) == (
                reply["service"],
                reply["status"],
                reply["backend"],
            )
            assert isinstance(listed["busy"], bool)

    # One configured replica down: the orchestrator says which, and that it is degraded.
    degraded_health = health(degraded.api)
    assert degraded_health["status"] == "degraded"
    assert degraded_health["detail"]["redis"] == "ok"
    reconstruction_replicas = degraded_health["detail"]["stages"]["reconstruction-service"]
    assert list(reconstruction_replicas) == [dead_url, *replicas]
    assert reconstruction_replicas[dead_url]["status"] == "unreachable"
    assert reconstruction_replicas[dead_url]["error"]
    for url in replicas:
        assert reconstruction_replicas[url]["status"] == "ok"
        assert reconstruction_replicas[url]["backend"] == answers["reconstruction-service"][url]["backend"]
