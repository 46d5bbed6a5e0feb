"""Progress within stage work (meshforge.progress, meshforge.cancellation.report_progress): the count on
the work's token, the ``GET /work/{job_id}/progress`` route every stage service has, the replica pool's
side of it, image-service's count over its flux replicas, and the backends that report.

No fleet here: the routes run in-process, the backends on the CPU (tests/test_stage_progress.py runs
the whole stack).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trimesh

from flux_service.backends.base import ImageJob, RenderOptions
from flux_service.backends.procedural import ProceduralShapes
from image_service.backends.flux_replicas import FluxReplicas
from meshforge.cancellation import (
    WorkRegistry,
    add_cancel_route,
    await_cancellable,
    current_progress,
    report_progress,
    run_cancellable,
)
from meshforge.http import ReplicaPool
from meshforge.progress import ProgressAnswer, WorkProgress
from meshforge.service import service_app
from meshforge.settings import PostprocessSettings
from meshforge.stage_schemas import FluxBatchRequest, FluxGenerateRequest, FluxImage
from postprocess_service.backends.base import FinishJob
from postprocess_service.backends.trimesh_finisher import TrimeshFinisher

JOB = "0123456789abcdef0123456789abcdef"
OTHER_JOB = "fedcba9876543210fedcba9876543210"
Count = tuple[int, int, str]


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> list[Count]:
    """Every count any work reports while the test runs, in order."""
    seen: list[Count] = []
    original = WorkProgress.report

    def recording(self: WorkProgress, done: int, total: int, unit: str) -> None:
        original(self, done, total, unit)
        seen.append(self.snapshot())

    monkeypatch.setattr(WorkProgress, "report", recording)
    return seen


def as_work(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` run as the cancellable work of JOB, as a stage service runs it."""
    return asyncio.run(run_cancellable(func, *args, job_id=JOB, registry=WorkRegistry()))


# --- the count and the route ---------------------------------------------------------------------------


def test_reporting_outside_any_work_does_nothing() -> None:
    report_progress(3, 8, "views")  # a unit test, a benchmark: no token, no error
    assert current_progress() is None


def test_a_count_never_runs_past_its_total_nor_below_zero() -> None:
    progress = WorkProgress()
    progress.report(12, 8, "views")
    assert progress.snapshot() == (8, 8, "views")
    progress.report(-1, 8, "views")
    progress.advance(3)
    assert progress.snapshot() == (3, 8, "views")
    progress.advance(10)
    assert progress.snapshot() == (8, 8, "views")


def test_the_progress_route_answers_the_running_works_count_then_not_running() -> None:
    app = service_app("test-service")
    registry = WorkRegistry()
    add_cancel_route(app, registry)
    counted, release = threading.Event(), threading.Event()

    def drawing() -> None:
        report_progress(3, 8, "views")
        counted.set()
        release.wait(5)

    @app.post("/draw/{job_id}")
    async def draw(job_id: str) -> dict[str, str]:
        await run_cancellable(drawing, job_id=job_id, registry=registry)
        return {"drawn": job_id}

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stage") as client:
            idle = await client.get(f"/work/{JOB}/progress")
            assert idle.status_code == 200  # never a 404: not running is an answer
            assert idle.json() == {"running": False, "done": 0, "total": 0, "unit": ""}
            work = asyncio.ensure_future(client.post(f"/draw/{JOB}"))
            await asyncio.to_thread(counted.wait, 5)
            answer = await client.get(f"/work/{JOB}/progress")
            assert answer.json() == {"running": True, "done": 3, "total": 8, "unit": "views"}
            assert (await client.get(f"/work/{OTHER_JOB}/progress")).json()["running"] is False
            release.set()
            assert (await work).status_code == 200
            assert (await client.get(f"/work/{JOB}/progress")).json()["running"] is False
            bad = await client.get(f"/work/{JOB.upper()}/progress")
            assert bad.status_code == 422 and "32 lowercase hex" in bad.json()["detail"]

    asyncio.run(scenario())


def test_work_that_counted_nothing_yet_is_running_with_no_total() -> None:
    registry = WorkRegistry()
    token = registry.open(JOB)
    assert ProgressAnswer.of(registry.progress(JOB)) == ProgressAnswer(running=True)
    token.progress.report(2, 4, "steps")
    assert ProgressAnswer.of(registry.progress(JOB)).fraction == 0.5
    registry.close(token)
    assert ProgressAnswer.of(registry.progress(JOB)) == ProgressAnswer(running=False)


def test_a_refiner_that_fails_leaves_the_services_own_count() -> None:
    app = service_app("test-service")
    registry = WorkRegistry()

    async def broken(job_id: str, answer: ProgressAnswer) -> ProgressAnswer:
        raise RuntimeError("the flux replicas are gone")

    add_cancel_route(app, registry, progress=broken)
    token = registry.open(JOB)
    token.progress.report(1, 4, "views")

    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stage") as client:
            return (await client.get(f"/work/{JOB}/progress")).json()

    assert asyncio.run(scenario()) == {"running": True, "done": 1, "total": 4, "unit": "views"}


# --- the replica pool's side ------------------------------------------------------------------------


def test_asking_a_replica_for_progress_never_raises() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if host == "old":  # a replica from before the route
            return httpx.Response(404, json={"detail": "Not Found", "code": "not_found"})
        if host == "odd":
            return httpx.Response(200, text="<html>")
        return httpx.Response(200, json={"running": True, "done": 2, "total": 4, "unit": "steps"})

    async def scenario() -> list[ProgressAnswer | None]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            pool = ReplicaPool("stage", ["http://ok", "http://down", "http://old", "http://odd"], client)
            return [await pool.work_progress(base, JOB) for base in pool.urls]

    ok, down, old, odd = asyncio.run(scenario())
    assert ok == ProgressAnswer(running=True, done=2, total=4, unit="steps")
    assert down is None and old is None and odd is None


def test_a_call_tells_each_replica_it_tries_so_the_last_one_holds_it() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "busy":
            return httpx.Response(503, json={"detail": "busy", "code": "busy"}, headers={"Retry-After": "1"})
        return httpx.Response(200, json={"running": False})

    async def scenario() -> tuple[list[str], str]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            pool = ReplicaPool("stage", ["http://busy", "http://free"], client)
            tried: list[str] = []
            _, replica = await pool.post(
                "/x", ProgressAnswer(running=True), ProgressAnswer, on_attempt=tried.append
            )
            return tried, replica

    tried, replica = asyncio.run(scenario())
    assert tried == ["http://busy", "http://free"] and replica == "http://free"


# --- image-service: views counted over its flux replicas -------------------------------------------------


def test_image_service_counts_views_back_and_the_share_its_replicas_have_drawn() -> None:
    """Two batches of four views in flight: replica 0 half way, replica 1 a quarter: 3 of 8 views; once
    replica 0's batch comes back, its four views count as drawn."""
    released = {"http://flux-0": asyncio.Event(), "http://flux-1": asyncio.Event()}
    shares = {"http://flux-0": (2, 4), "http://flux-1": (1, 4)}

    async def handle(request: httpx.Request) -> httpx.Response:
        base = f"http://{request.url.host}"
        if request.url.path.endswith("/progress"):
            done, total = shares[base]
            return httpx.Response(200, json={"running": True, "done": done, "total": total, "unit": "steps"})
        body = FluxBatchRequest.model_validate_json(request.content)
        await released[base].wait()
        images = [FluxImage(image_path=i.output_path, seed=i.seed or 0).model_dump() for i in body.images]
        return httpx.Response(
            200, json={"images": images, "backend": "fake", "seconds": 0.1, "pipeline_calls": 1}
        )

    folder = f"/data/inputs/jobs/{JOB}/generated"
    requests = [
        FluxGenerateRequest(
            prompt=f"view {i}", width=64, height=64, view="front", output_path=f"{folder}/{i}.png"
        )
        for i in range(8)
    ]

    async def scenario() -> list[ProgressAnswer]:
        registry = WorkRegistry()
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            replicas = FluxReplicas(ReplicaPool("flux-service", list(released), client))

            async def draw() -> None:
                report_progress(0, 8, "views")  # as image_service.consistency.draw_views starts
                await replicas.draw_many(requests)

            work = asyncio.ensure_future(await_cancellable(draw(), job_id=JOB, registry=registry))

            async def answer() -> ProgressAnswer:
                return await replicas.progress(JOB, ProgressAnswer.of(registry.progress(JOB)))

            await asyncio.sleep(0.05)
            seen = [await answer()]
            released["http://flux-0"].set()
            await asyncio.sleep(0.05)
            seen.append(await answer())
            released["http://flux-1"].set()
            await work
            seen.append(await replicas.progress(JOB, ProgressAnswer.of(registry.progress(JOB))))
            return seen

    in_flight, one_back, done = asyncio.run(scenario())
    assert (in_flight.done, in_flight.total, in_flight.unit) == (3, 8, "views")  # 4 × 1/2 + 4 × 1/4
    assert one_back.done == 5  # 4 drawn + 4 × 1/4 in flight
    assert done == ProgressAnswer(running=False)


# --- the backends that report ------------------------------------------------------------------------------


def test_the_procedural_flux_backend_counts_the_views_it_draws(reports: list[Count]) -> None:
    jobs = [ImageJob("a red cube", 0, view) for view in ("front", "right", "back")]
    as_work(ProceduralShapes().generate_batch, jobs, RenderOptions(32, 32))
    assert reports == [(1, 3, "views"), (2, 3, "views"), (3, 3, "views")]


@pytest.fixture
def coloured_mesh(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cache" / "jobs" / JOB / "reconstruction.glb"
    path.parent.mkdir(parents=True)
    mesh = trimesh.creation.icosphere(subdivisions=3)
    mesh.visual.vertex_colors = np.tile([200, 40, 40, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    path.write_bytes(mesh.export(file_type="glb"))
    yield path


def test_post_processing_counts_its_steps(tmp_path: Path, coloured_mesh: Path, reports: list[Count]) -> None:
    outputs = tmp_path / "outputs"
    job = FinishJob(
        coloured_mesh, outputs / f"{JOB}.glb", "glb", target_faces=500, preview_path=outputs / f"{JOB}.png"
    )
    as_work(TrimeshFinisher(PostprocessSettings(data_dir=tmp_path)).finish, job)
    # load, clean, decimate, preview, texture, export
    assert reports == [(step, 6, "steps") for step in range(7)]
    reports.clear()
    as_work(
        TrimeshFinisher(PostprocessSettings(data_dir=tmp_path)).finish,
        FinishJob(coloured_mesh, outputs / "b.stl", "stl"),
    )
    assert reports == [(step, 4, "steps") for step in range(5)]


def test_the_visual_hull_counts_views_and_steps_to_the_end(reports: list[Count]) -> None:
    from meshforge.geometry.views import view_set
    from reconstruction_service.visual_hull import reconstruct

    views = list(view_set(4))
    image = np.zeros((64, 64, 4), np.uint8)
    image[16:48, 16:48] = (200, 40, 40, 255)
    as_work(lambda: reconstruct([image] * 4, views, resolution=32))
    assert reports[0] == (0, 11, "steps") and reports[-1] == (11, 11, "steps")  # 4 + 3 + 4
    assert [done for done, _, _ in reports] == list(range(12))


def test_triposr_counts_the_chunks_of_its_density_grid(reports: list[Count], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from reconstruction_service.triposr.extraction import density_grid
    from reconstruction_service.triposr.model import load_pretrained
    from tests.tiny_triposr import build_tiny_triposr

    model = load_pretrained(build_tiny_triposr(tmp_path / "models"))
    with torch.inference_mode():
        planes = model(torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0)))[0]
    as_work(density_grid, model.decoder, planes, model.config.renderer, 20, 3000)  # 8000 points
    assert reports == [(1, 3, "chunks"), (2, 3, "chunks"), (3, 3, "chunks")]


def test_flux_counts_denoising_steps_over_every_pipeline_call(reports: list[Count], tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from flux_service.backends.diffusers_flux import DiffusersFlux
    from meshforge.settings import FluxSettings
    from tests.tiny_flux import build_tiny_flux

    build_tiny_flux(tmp_path / "models")
    settings = FluxSettings(data_dir=tmp_path, flux_backend="diffusers", flux_device="cpu", flux_max_batch=1)
    flux = DiffusersFlux.from_settings(settings)
    jobs = [ImageJob("a red cube", 1), ImageJob("a blue ball", 2)]
    side = 2 * flux.size_multiple
    as_work(flux.generate_batch, jobs, RenderOptions(side, side, steps=2))
    assert reports == [(1, 4, "steps"), (2, 4, "steps"), (3, 4, "steps"), (4, 4, "steps")]
