"""One job's way through the stages: images → reconstruction → post-processing → asset.

The orchestrator owns the flow and never knows which model runs: each stage is a replica pool of an
HTTP service, and the backend that answered is recorded in the job's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from meshforge.errors import MeshforgeError
from meshforge.http import ReplicaPool
from meshforge.schemas import FromImageRequest, JobState, OutputFormat, QualityTier, StageRecord
from meshforge.settings import Settings, TierProfile
from meshforge.stage_schemas import (
    ImagesResult,
    ImagineFromPathsRequest,
    ImagineFromUrlsRequest,
    ImagineGenerateRequest,
    PostprocessRequest,
    PostprocessResponse,
    ReconstructRequest,
    ReconstructResponse,
)
from meshforge.storage import Storage
from orchestrator.abandon import abandon_in_background
from orchestrator.jobs import JobStore
from orchestrator.public import PublicView, output_name
from orchestrator.retrying import REDIS_UNREACHABLE, until_redis_answers
from orchestrator.view_plan import ViewPlanner

T = TypeVar("T")
log = logging.getLogger(__name__)

STAGE_FAILURE = {
    JobState.generating_images: "image stage failed",
    JobState.reconstructing_3d: "3D reconstruction failed",
    JobState.post_processing: "post-processing failed",
}


class OwnershipLost(Exception):
    """The job was cancelled, or handed to another dispatcher, while this one worked on it."""


class JobDeadlineExceeded(MeshforgeError):
    """The job ran longer than MESHFORGE_JOB_DEADLINE_SECONDS on this attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the job ran longer than its time limit of {seconds:g} s (MESHFORGE_JOB_DEADLINE_SECONDS)"
        )


@dataclass
class StagePools:
    images: ReplicaPool
    reconstruction: ReplicaPool
    postprocess: ReplicaPool


class JobRunner:
    """Runs claimed jobs, writing every step to the job's record."""

    def __init__(self, store: JobStore, pools: StagePools, settings: Settings, worker_id: str) -> None:
        self.store = store
        self.pools = pools
        self.settings = settings
        self.storage = Storage(settings)
        self.worker_id = worker_id
        self.view_planner = ViewPlanner(pools.reconstruction)
        # What a job record may show: storage paths relative, replicas by position (orchestrator/public.py).
        self.public = PublicView(
            (self.storage.inputs, self.storage.cache, self.storage.outputs, self.storage.models),
            {p.stage: p.urls for p in (pools.images, pools.reconstruction, pools.postprocess)}
            | {"flux-service": settings.flux_service_urls},
        )
        self._deadlines: dict[str, float] = {}  # job id -> time.monotonic() by which it must end

    async def run(self, job_id: str) -> None:
        limit = self.settings.job_deadline_seconds
        self._deadlines[job_id] = time.monotonic() + limit if limit > 0 else math.inf
        try:
            await self._run(job_id)
        finally:
            self._deadlines.pop(job_id, None)

    async def _run(self, job_id: str) -> None:
        # Every Redis call waits an outage out (orchestrator/retrying.py): a job is never failed, nor
        # dropped, because Redis restarted. Once Redis is back its fenced writes go on, or are
        # refused if the job was reaped meanwhile and is another dispatcher's now.
        record = await self._redis(job_id, "read", lambda: self.store.get(job_id))
        if record.attempts > 1:
            await self._stop_earlier_attempt(job_id)
        stage = JobState.generating_images
        try:
            images = await self._images(job_id, record.kind, record.request)
            stage = JobState.reconstructing_3d
            mesh = await self._reconstruct(job_id, record.request, images)
            stage = JobState.post_processing
            asset = await self._postprocess(job_id, record.request, mesh)
            await self._finish(job_id, asset)
        except OwnershipLost:
            log.info("job %s: stopped, it was cancelled or taken over", job_id)
        except MeshforgeError as exc:
            await self._fail(job_id, f"{STAGE_FAILURE.get(stage, 'job failed')}: {exc.message}")
        except Exception:
            # The exception's text may hold internal addresses and paths: the log gets it, not the job.
            log.exception("job %s: unexpected error", job_id)
            failure = STAGE_FAILURE.get(stage, "job failed")
            await self._fail(job_id, f"{failure}: internal error; see the dispatcher log (job {job_id})")

    async def _stop_earlier_attempt(self, job_id: str) -> None:
        """A retried job may still have work running from the attempt of a dispatcher that stalled or
        died mid-call: that work is no one's now, so it is told to stop before this attempt starts."""
        pools = (self.pools.images, self.pools.reconstruction, self.pools.postprocess)
        stopped = sum(await asyncio.gather(*(pool.cancel(job_id) for pool in pools)))
        if stopped:
            log.info("job %s: stopped %d piece(s) of work left by an earlier attempt", job_id, stopped)

    async def _redis(self, job_id: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await until_redis_answers(call, f"job {job_id}: {what}")

    def _tier(self, request: dict[str, Any]) -> TierProfile:
        return self.settings.tier(QualityTier(request["quality_tier"]))

    async def _images(self, job_id: str, kind: str, request: dict[str, Any]) -> ImagesResult:
        tier = self._tier(request)
        if kind == "prompt":
            plan = await self.view_planner.plan(tier)
            body: BaseModel = ImagineGenerateRequest(
                prompt=request["prompt"],
                num_views=plan.views,
                image_size=plan.image_size,
                seed=request.get("seed"),
                quality_tier=request["quality_tier"],
                job_id=job_id,
            )
            path = "/imagine/generate"
            message = f"generating {plan.views} view{'s' if plan.views > 1 else ''} of the prompt"
            if plan.reason:
                message += f" ({plan.reason})"
        else:
            source = FromImageRequest.model_validate(request)
            if source.image_urls is not None:
                body = ImagineFromUrlsRequest(
                    urls=source.image_urls, image_size=tier.image_size, job_id=job_id
                )
                path, message = "/imagine/from-urls", f"downloading {len(source.image_urls)} images"
            else:
                body = ImagineFromPathsRequest(
                    image_paths=[str(self.storage.input_image(p)) for p in source.image_paths or []],
                    image_size=tier.image_size,
                    job_id=job_id,
                )
                path, message = "/imagine/from-paths", f"preparing {len(source.image_paths or [])} images"
        return await self._stage(
            job_id, JobState.generating_images, message, self.pools.images, path, body, ImagesResult
        )

    async def _reconstruct(
        self, job_id: str, request: dict[str, Any], images: ImagesResult
    ) -> ReconstructResponse:
        tier = self._tier(request)
        body = ReconstructRequest(
            image_paths=images.image_paths,
            views=images.views,
            output_format="glb",
            resolution=tier.voxel_resolution,
            job_id=job_id,
            output_path=str(self.storage.job_cache(job_id) / "reconstruction.glb"),
        )
        message = f"reconstructing a mesh from {len(images.image_paths)} views"
        return await self._stage(
            job_id,
            JobState.reconstructing_3d,
            message,
            self.pools.reconstruction,
            "/reconstruct/mesh",
            body,
            ReconstructResponse,
        )

    async def _postprocess(
        self, job_id: str, request: dict[str, Any], mesh: ReconstructResponse
    ) -> PostprocessResponse:
        tier = self._tier(request)
        output_format = OutputFormat(request["output_format"])
        body = PostprocessRequest(
            mesh_path=mesh.mesh_path,
            output_format=output_format,
            target_faces=request.get("target_faces") or tier.target_faces,
            origin=request.get("origin", "bottom"),
            height_m=request.get("height_m"),
            texture_size=tier.texture_size,
            output_path=str(self.storage.asset_path(job_id, output_format.asset_suffix)),
            job_id=job_id,
        )
        message = f"cleaning the mesh and exporting {output_format}"
        return await self._stage(
            job_id,
            JobState.post_processing,
            message,
            self.pools.postprocess,
            "/postprocess/clean",
            body,
            PostprocessResponse,
        )

    async def _stage(
        self,
        job_id: str,
        state: JobState,
        message: str,
        pool: ReplicaPool,
        path: str,
        body: BaseModel,
        response_model: type[T],
    ) -> T:
        if time.monotonic() >= self._deadlines.get(job_id, math.inf):
            raise JobDeadlineExceeded(self.settings.job_deadline_seconds)
        entered = await self._redis(
            job_id, "enter stage", lambda: self.store.enter_stage(job_id, self.worker_id, state, message)
        )
        if not entered:
            raise OwnershipLost
        started, started_at = time.monotonic(), time.time()
        result, replica = await self._until_cancelled(job_id, lambda: pool.post(path, body, response_model))
        detail = dict(getattr(result, "detail", {}) or {})
        detail.update({key: getattr(result, key) for key in ("vertices", "faces") if hasattr(result, key)})
        detail["replica"] = pool.urls.index(replica)
        record = StageRecord(
            backend=getattr(result, "backend", None),
            seconds=round(time.monotonic() - started, 3),
            started_at=started_at,
            finished_at=time.time(),
            detail=self.public.detail(detail),
        )
        recorded = await self._redis(
            job_id, "record stage", lambda: self.store.record_stage(job_id, self.worker_id, state, record)
        )
        if not recorded:
            raise OwnershipLost
        return result

    async def _until_cancelled(self, job_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a stage call, abandoning it as soon as the job stops being ours (e.g. cancelled).

        The watcher is asked to stop rather than cancelled: cancelling a task in the middle of a Redis
        command can leave its pooled connection with an unread reply, which stalls a later command.
        """
        stop = asyncio.Event()
        task = asyncio.ensure_future(call())
        watcher = asyncio.ensure_future(self._watch(job_id, stop))
        try:
            done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            watcher.result()  # raises JobDeadlineExceeded when that is why the watcher returned
            raise OwnershipLost
        finally:
            stop.set()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                abandon_in_background(self, job_id)  # the replicas stop its work too (orchestrator.abandon)
            await watcher

    async def _watch(self, job_id: str, stop: asyncio.Event) -> None:
        """Returns when the job is no longer this dispatcher's, or when asked to stop; raises
        JobDeadlineExceeded once the job has run past its deadline."""
        while await self._still_mine(job_id):
            if time.monotonic() >= self._deadlines.get(job_id, math.inf):
                raise JobDeadlineExceeded(self.settings.job_deadline_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
            if stop.is_set():
                return

    async def _still_mine(self, job_id: str) -> bool:
        try:
            return await self.store.is_still_mine(job_id, self.worker_id)
        except REDIS_UNREACHABLE as exc:
            # Cannot tell is not "lost": the stage call goes on, and the next look asks again. If the
            # job was reaped meanwhile, the first write after Redis returns is refused.
            log.warning("job %s: cannot check ownership, Redis unreachable (%s)", job_id, exc)
            return True

    async def _finish(self, job_id: str, asset: PostprocessResponse) -> None:
        fields = {
            "progress": 100,
            "preview_path": output_name(asset.preview_path) or "",
            "asset_path": output_name(asset.asset_path),
            "message": f"done: {asset.faces} faces, {asset.vertices} vertices",
        }
        finished = await self._redis(
            job_id,
            "finish",
            lambda: self.store.finish(job_id, self.worker_id, JobState.completed, **fields),
        )
        if not finished:
            # Cancelled between the last stage's answer and this write: its asset must not stay behind.
            abandon_in_background(self, job_id)
            raise OwnershipLost

    async def _fail(self, job_id: str, message: str) -> None:
        log.warning("job %s failed: %s", job_id, message)
        message = self.public.text(message)
        await self._redis(
            job_id,
            "fail",
            lambda: self.store.finish(job_id, self.worker_id, JobState.failed, message=message),
        )
