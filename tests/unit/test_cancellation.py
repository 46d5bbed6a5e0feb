"""Cancellation reaching the work (meshforge.cancellation): tokens, safe points, the runner, the route.

No fleet here: the FLUX backend runs a tiny random pipeline on the CPU, the routes run in-process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trimesh

from flux_service.backends.base import ImageJob, RenderOptions
from flux_service.backends.diffusers_flux import DiffusersFlux
from meshforge.cancellation import (
    WORK,
    WorkRegistry,
    add_cancel_route,
    await_cancellable,
    check_cancelled,
    current_job_id,
    run_cancellable,
)
from meshforge.errors import InvalidInput, JobCancelled
from meshforge.http import ReplicaPool
from meshforge.service import ExclusiveRunner, service_app
from meshforge.settings import CommonSettings, FluxSettings, PostprocessSettings
from meshforge.storage import Storage, atomic_write_bytes
from orchestrator.abandon import abandon
from postprocess_service.backends.base import FinishJob
from postprocess_service.backends.trimesh_finisher import TrimeshFinisher
from tests.tiny_flux import build_tiny_flux

JOB = "0123456789abcdef0123456789abcdef"
OTHER_JOB = "fedcba9876543210fedcba9876543210"


def wait_for(check: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def spin_until_cancelled(started: threading.Event) -> None:
    started.set()
    while True:
        check_cancelled()
        time.sleep(0.005)


# --- FLUX: between denoising steps ----------------------------------------------------------------


@pytest.fixture(scope="module")
def flux(tmp_path_factory: pytest.TempPathFactory) -> DiffusersFlux:
    data_dir = tmp_path_factory.mktemp("flux-data")
    build_tiny_flux(data_dir / "models")
    settings = FluxSettings(data_dir=data_dir, flux_backend="diffusers", flux_device="cpu")
    return DiffusersFlux.from_settings(settings)


def test_flux_stops_between_denoising_steps_once_its_job_is_cancelled(
    flux: DiffusersFlux, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = WorkRegistry()
    pipeline = flux._pipeline
    steps: list[int] = []
    decodes: list[int] = []
    forward, decode = pipeline.transformer.forward, pipeline.vae.decode

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        steps.append(1)
        if len(steps) == 2:
            registry.cancel(JOB)  # the cancel arrives during the second of 20 steps
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipeline.transformer, "forward", counting_forward)
    monkeypatch.setattr(pipeline.vae, "decode", lambda *a, **k: decodes.append(1) or decode(*a, **k))
    work = run_cancellable(
        flux.generate_batch, [ImageJob("a red cube", 1)], RenderOptions(32, 32, steps=20),
        job_id=JOB, registry=registry,
    )  # fmt: skip
    with pytest.raises(JobCancelled):
        asyncio.run(work)
    assert len(steps) == 2, "the step in progress finishes; no further step starts"
    assert decodes == [], "a cancelled job's latents are not decoded"
    assert not registry.busy

    steps.clear()  # the pipeline is usable again right away
    rendered = flux.generate_batch([ImageJob("a red cube", 1)], RenderOptions(32, 32, steps=3))
    assert len(rendered.images) == 1 and len(steps) == 3


# --- the runner and the route -----------------------------------------------------------------------


def test_the_runner_frees_the_replica_as_soon_as_cancelled_work_stops() -> None:
    async def scenario() -> None:
        runner = ExclusiveRunner("test-service")
        started = threading.Event()
        first = asyncio.ensure_future(runner.run(spin_until_cancelled, started, job_id=JOB))
        await asyncio.to_thread(started.wait, 2)
        assert runner.busy and WORK.running(JOB)
        cancelled_at = time.monotonic()
        assert WORK.cancel(JOB) == 1
        with pytest.raises(JobCancelled):
            await first
        assert time.monotonic() - cancelled_at < 0.5
        assert not runner.busy and not WORK.running(JOB)
        assert await runner.run(lambda: current_job_id(), job_id=OTHER_JOB) == OTHER_JOB

    asyncio.run(scenario())


def test_the_cancel_route_is_idempotent_and_stops_running_work() -> None:
    app = service_app("test-service")
    runner = ExclusiveRunner("test-service")
    started = threading.Event()
    add_cancel_route(app)

    @app.post("/slow/{job_id}")
    async def slow(job_id: str) -> dict[str, str]:
        await runner.run(spin_until_cancelled, started, job_id=job_id)
        return {"finished": job_id}

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stage") as client:
            for _ in range(2):  # nothing of the job runs here: still 200, every time
                answer = await client.post(f"/work/{JOB}/cancel")
                assert answer.status_code == 200 and answer.json() == {
                    "job_id": JOB,
                    "cancelled": 0,
                    "stopped": True,
                }
            work = asyncio.ensure_future(client.post(f"/slow/{JOB}"))
            await asyncio.to_thread(started.wait, 2)
            assert (await client.post(f"/work/{OTHER_JOB}/cancel")).json()["cancelled"] == 0
            assert runner.busy, "another job's cancel leaves this work alone"
            answer = (await client.post(f"/work/{JOB}/cancel")).json()
            assert answer["cancelled"] == 1 and answer["stopped"], "it answers once the work has stopped"
            stopped = await work
            assert stopped.status_code == 409 and stopped.json()["code"] == "job_cancelled"
            assert (await client.post(f"/work/{JOB}/cancel")).json()["cancelled"] == 0
            assert not runner.busy
            bad = await client.post("/work/..%2F..%2Fetc/cancel")
            assert bad.status_code in (404, 422)
            bad = await client.post(f"/work/{JOB.upper()}/cancel")
            assert bad.status_code == 422 and "32 lowercase hex" in bad.json()["detail"]

    asyncio.run(scenario())


def test_async_work_is_cancelled_as_a_task_and_knows_its_job() -> None:
    registry = WorkRegistry()
    seen: list[str | None] = []

    async def drawing() -> None:
        seen.append(current_job_id())
        await asyncio.sleep(30)

    async def scenario() -> None:
        work = asyncio.ensure_future(await_cancellable(drawing(), job_id=JOB, registry=registry))
        await asyncio.sleep(0.05)
        assert registry.cancel(JOB) == 1
        with pytest.raises(JobCancelled):
            await asyncio.wait_for(work, 1)

    asyncio.run(scenario())
    assert seen == [JOB] and not registry.busy


# --- files: committed only while the job is live; a cancelled job's are removed -------------------------


def test_a_cancelled_job_renames_no_file_into_place(tmp_path: Path) -> None:
    registry = WorkRegistry()
    target = tmp_path / "outputs" / f"{JOB}.glb"

    def write_after_cancel() -> None:
        registry.cancel(JOB)
        atomic_write_bytes(target, b"glTF...")

    with pytest.raises(JobCancelled):
        asyncio.run(run_cancellable(write_after_cancel, job_id=JOB, registry=registry))
    assert list(target.parent.iterdir()) == [], "neither the asset nor its temporary file is left"
    atomic_write_bytes(target, b"glTF")  # outside any job's work a write is never refused
    assert target.read_bytes() == b"glTF"


def test_post_processing_stops_between_its_steps(tmp_path: Path) -> None:
    registry = WorkRegistry()
    mesh_path = tmp_path / "cache" / "jobs" / JOB / "reconstruction.glb"  # the dispatcher's layout
    mesh_path.parent.mkdir(parents=True)
    mesh_path.write_bytes(trimesh.creation.icosphere(subdivisions=2).export(file_type="glb"))
    outputs = tmp_path / "outputs"
    job = FinishJob(mesh_path, outputs / f"{JOB}.glb", "glb", preview_path=outputs / f"{JOB}.preview.png")
    finisher = TrimeshFinisher(PostprocessSettings(data_dir=tmp_path))
    steps: list[str] = []

    def finish() -> dict[str, Any]:
        import postprocess_service.backends.trimesh_finisher as module

        real_clean = module.clean_mesh

        def clean_then_cancel(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
            steps.append("clean")
            registry.cancel(JOB)
            return real_clean(mesh)

        module.clean_mesh = clean_then_cancel
        try:
            return finisher.finish(job)
        finally:
            module.clean_mesh = real_clean

    with pytest.raises(JobCancelled):
        asyncio.run(run_cancellable(finish, job_id=JOB, registry=registry))
    assert steps == ["clean"]
    assert not job.output_path.exists() and not job.preview_path.exists()


def test_visual_hull_carving_stops_between_views() -> None:
    from meshforge.geometry.views import view_set
    from reconstruction_service.visual_hull import reconstruct

    registry = WorkRegistry()
    views = view_set(4)
    image = np.zeros((64, 64, 4), np.uint8)
    image[16:48, 16:48] = (200, 40, 40, 255)

    def carve() -> trimesh.Trimesh:
        registry.cancel(JOB)
        return reconstruct([image] * len(views), list(views), resolution=32)

    with pytest.raises(JobCancelled):
        asyncio.run(run_cancellable(carve, job_id=JOB, registry=registry))


def test_discarding_a_jobs_outputs_removes_only_that_jobs_files(tmp_path: Path) -> None:
    storage = Storage(CommonSettings(data_dir=tmp_path))
    storage.ensure()
    mine = [storage.asset_path(JOB, ".glb"), storage.preview_path(JOB), storage.asset_path(JOB, ".obj.zip")]
    others = [storage.asset_path(OTHER_JOB, ".glb"), storage.outputs / f"{JOB}x.glb"]
    for path in mine + others:
        path.write_bytes(b"x")
    assert sorted(storage.discard_job_outputs(JOB)) == sorted(mine)
    assert all(path.exists() for path in others) and not any(path.exists() for path in mine)
    with pytest.raises(InvalidInput):  # never a glob pattern
        storage.discard_job_outputs("*")


# --- the dispatcher's side ----------------------------------------------------------------------------


def recording_pool(stage: str, seen: list[str], *, down: str | None = None) -> ReplicaPool:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == down:
            raise httpx.ConnectError("connection refused", request=request)
        seen.append(f"{request.url.host}{request.url.path}")
        return httpx.Response(200, json={"job_id": JOB, "cancelled": 1})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return ReplicaPool(stage, [f"http://{stage}-{i}" for i in range(3)], client)


def test_replica_pool_cancel_tells_every_replica_and_never_raises() -> None:
    seen: list[str] = []
    pool = recording_pool("reconstruction", seen, down="reconstruction-1")
    assert asyncio.run(pool.cancel(JOB)) == 2
    assert sorted(seen) == [f"reconstruction-{i}/work/{JOB}/cancel" for i in (0, 2)]


class FakeStore:
    def __init__(self, record: dict[str, str]) -> None:
        self.record = record

    async def raw(self, job_id: str) -> dict[str, str]:
        return self.record


@pytest.mark.parametrize(
    ("state", "owner", "told", "discarded"),
    [
        ("cancelled", "", True, True),  # the user cancelled: stop the work, drop the files
        ("post_processing", "me", True, False),  # our own deadline or shutdown: stop, keep the files
        ("post_processing", "another", False, False),  # taken over: the new owner's calls must live
    ],
)
def test_abandoning_tells_the_replicas_unless_another_dispatcher_took_the_job(
    tmp_path: Path, state: str, owner: str, told: bool, discarded: bool
) -> None:
    storage = Storage(CommonSettings(data_dir=tmp_path))
    storage.ensure()
    asset = storage.asset_path(JOB, ".glb")
    asset.write_bytes(b"x")
    seen: list[str] = []
    pools = [recording_pool("postprocess", seen)]
    store: Any = FakeStore({"state": state, "owner": owner})
    asyncio.run(abandon(JOB, store=store, storage=storage, worker_id="me", pools=pools))
    assert bool(seen) is told
    assert asset.exists() is not discarded
