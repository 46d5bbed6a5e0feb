"""One job's way through the stages: images → reconstruction → post-processing → asset.

The orchestrator owns the flow and never knows which model runs: the stages are declared once, in
orchestrator.stages, each a replica pool of an HTTP service; the runner walks that table and records
the backend that answered each stage in the job's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from meshforge.errors import MeshforgeError
from meshforge.http import ReplicaPool
from meshforge.logging import job_context
from meshforge.schemas import JobState, StageRecord
from meshforge.settings import DispatcherSettings
from meshforge.stage_schemas import PostprocessResponse, StageAnswer
from meshforge.storage import Storage
from orchestrator.abandon import abandon_in_background
from orchestrator.jobs import JobStore
from orchestrator.metrics import BEFORE_STAGES, COMPLETED, DEADLINE, dispatcher_metrics
from orchestrator.public import PublicView, output_name
from orchestrator.records import to_status
from orchestrator.retrying import REDIS_UNREACHABLE, until_redis_answers
from orchestrator.stage_progress import ProgressFollower
from orchestrator.stages import STAGES, VIEW_CONSUMER, JobContext, Stage, final_asset, tier_of
from orchestrator.view_plan import ViewPlanner

T = TypeVar("T")
log = logging.getLogger(__name__)


class OwnershipLost(Exception):
    """The job was cancelled, or handed to another dispatcher, while this one worked on it."""


class JobDeadlineExceeded(MeshforgeError):
    """The job ran longer than MESHFORGE_JOB_DEADLINE_SECONDS on this attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the job ran longer than its time limit of {seconds:g} s (MESHFORGE_JOB_DEADLINE_SECONDS)"
        )


# Each stage service's replica pool, by the service's name (orchestrator.stages.Stage.service).
StagePools = Mapping[str, ReplicaPool]
WATCH_SECONDS = 0.25  # how often a running stage checks that its job is still this dispatcher's


class StageLog:
    """The job's stage records (as stored), kept by the runner so that a finished stage's record
    rides on the next write it makes anyway (the next stage's start, or the job's end)."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self._stages = stored
        self._dirty = False

    def add(self, state: JobState, record: StageRecord) -> None:
        self._stages[state.value] = record.model_dump()
        self._dirty = True

    def unwritten(self) -> dict[str, str]:
        """The fields to write with the next update: the stages, if any changed since."""
        if not self._dirty:
            return {}
        self._dirty = False
        return {"stages": json.dumps(self._stages)}


class JobRunner:
    """Runs claimed jobs through the stage table (orchestrator.stages), writing every step to the
    job's record."""

    def __init__(
        self, store: JobStore, pools: StagePools, settings: DispatcherSettings, worker_id: str
    ) -> None:
        self.store = store
        self.pools = pools
        self.settings = settings
        self.storage = Storage(settings)
        self.worker_id = worker_id
        self.view_planner = ViewPlanner(pools[VIEW_CONSUMER])
        # What a job record may show: storage paths relative, replicas by position (orchestrator/public.py).
        self.public = PublicView(
            (self.storage.inputs, self.storage.cache, self.storage.outputs, self.storage.models),
            {name: pool.urls for name, pool in pools.items()} | {"flux-service": settings.flux_service_urls},
        )
        self._deadlines: dict[str, float] = {}  # job id -> time.monotonic() by which it must end
        self.metrics = dispatcher_metrics()  # orchestrator/metrics.py

    async def run(self, job_id: str) -> bool:
        """Run the job to its end; True when this run wrote that end (which also took the id off the
        processing list), False when the job stopped being this dispatcher's on the way."""
        limit = self.settings.job_deadline_seconds
        self._deadlines[job_id] = time.monotonic() + limit if limit > 0 else math.inf
        try:
            with job_context(job_id):  # every log line of this job's run names it (meshforge.logging)
                return await self._run(job_id)
        finally:
            self._deadlines.pop(job_id, None)

    async def _run(self, job_id: str) -> bool:
        # Every Redis call waits an outage out (orchestrator/retrying.py): a job is never failed, nor
        # dropped, because Redis restarted. Once Redis is back its fenced writes go on, or are
        # refused if the job was reaped meanwhile and is another dispatcher's now.
        raw = await self._redis(job_id, "read", lambda: self.store.raw(job_id))
        record = to_status(raw)
        stage_log = StageLog(json.loads(raw.get("stages") or "{}"))
        if record.attempts > 1:
            await self._stop_earlier_attempt(job_id)
        else:
            self.metrics.queue_wait.observe(max(0.0, time.time() - record.created_at))
        created_at = record.created_at
        failure = BEFORE_STAGES
        try:
            job = JobContext(
                job_id=job_id,
                kind=record.kind,
                request=record.request,
                tier=tier_of(self.settings, record.request),
                storage=self.storage,
                planner=self.view_planner,
            )
            for stage in STAGES:
                failure = stage.failure
                job.answers[stage.state] = await self._stage(job, stage, stage_log)
            await self._finish(job_id, final_asset(job), created_at, stage_log)
            return True
        except OwnershipLost:
            log.info("job %s: stopped, it was cancelled or taken over", job_id)
            return False
        except MeshforgeError as exc:
            reason = DEADLINE if isinstance(exc, JobDeadlineExceeded) else failure
            return await self._fail(job_id, f"{failure}: {exc.message}", reason, created_at, stage_log)
        except Exception:
            # The exception's text may hold internal addresses and paths: the log gets it, not the job.
            log.exception("job %s: unexpected error", job_id)
            message = f"{failure}: internal error; see the dispatcher log (job {job_id})"
            return await self._fail(job_id, message, failure, created_at, stage_log)

    async def _stop_earlier_attempt(self, job_id: str) -> None:
        """A retried job may still have work running from the attempt of a dispatcher that stalled or
        died mid-call: that work is no one's now, so it is told to stop before this attempt starts."""
        stopped = sum(await asyncio.gather(*(pool.cancel(job_id) for pool in self.pools.values())))
        if stopped:
            log.info("job %s: stopped %d piece(s) of work left by an earlier attempt", job_id, stopped)

    async def _redis(self, job_id: str, what: str, call: Callable[[], Awaitable[T]]) -> T:
        return await until_redis_answers(call, f"job {job_id}: {what}")

    async def _stage(self, job: JobContext, stage: Stage, stage_log: StageLog) -> StageAnswer:
        job_id = job.job_id
        if time.monotonic() >= self._deadlines.get(job_id, math.inf):
            raise JobDeadlineExceeded(self.settings.job_deadline_seconds)
        call = await stage.build(job, stage.output(job))
        # The previous stage's record goes with this write, and its count is cleared (stage_progress.py).
        recorded = {**stage_log.unwritten(), "stage_progress": ""}
        entered = await self._redis(
            job_id,
            "enter stage",
            lambda: self.store.enter_stage(
                job_id, self.worker_id, stage.state, call.message, stage.progress, **recorded
            ),
        )
        if not entered:
            raise OwnershipLost
        pool = self.pools[stage.service]
        # Asks the replica holding the call how far it has got (orchestrator/stage_progress.py).
        progress = ProgressFollower(self.store, self.worker_id, job_id, pool, stage, call.message)
        started, started_at = time.monotonic(), time.time()
        result, replica = await self._until_cancelled(
            job_id,
            lambda: pool.post(
                call.path, call.body, stage.response, only=call.replicas, on_attempt=progress.held_by
            ),
            progress,
        )
        seconds = time.monotonic() - started
        self.metrics.stage_seconds.labels(stage.state.value).observe(seconds)
        detail = result.recorded_detail()
        detail["replica"] = pool.urls.index(replica)
        record = StageRecord(
            backend=result.backend,
            seconds=round(seconds, 3),
            started_at=started_at,
            finished_at=time.time(),
            detail=self.public.detail(detail),
        )
        stage_log.add(stage.state, record)  # written with the next stage's start, or the job's end
        return result

    async def _until_cancelled(
        self, job_id: str, call: Callable[[], Awaitable[T]], progress: ProgressFollower | None = None
    ) -> T:
        """Run a stage call, abandoning it as soon as the job stops being ours (e.g. cancelled), and
        writing its ``progress`` meanwhile.

        The watchers are asked to stop rather than cancelled: cancelling a task in the middle of a Redis
        command can leave its pooled connection with an unread reply, which stalls a later command.
        """
        stop = asyncio.Event()
        task = asyncio.ensure_future(call())
        watcher = asyncio.ensure_future(self._watch(job_id, stop))
        follower = asyncio.ensure_future(progress.follow(stop)) if progress is not None else None
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
            if follower is not None:  # its last write lands before the next stage's start
                await follower

    async def _watch(self, job_id: str, stop: asyncio.Event) -> None:
        """Returns when the job is no longer this dispatcher's, or when asked to stop; raises
        JobDeadlineExceeded once the job has run past its deadline."""
        # The first look comes after one interval: entering the stage has just proved ownership, and
        # a stage that answers sooner costs no Redis command here.
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_SECONDS)
            if stop.is_set() or not await self._still_mine(job_id):
                return
            if time.monotonic() >= self._deadlines.get(job_id, math.inf):
                raise JobDeadlineExceeded(self.settings.job_deadline_seconds)

    async def _still_mine(self, job_id: str) -> bool:
        try:
            return await self.store.is_still_mine(job_id, self.worker_id)
        except REDIS_UNREACHABLE as exc:
            # Cannot tell is not "lost": the stage call goes on, and the next look asks again. If the
            # job was reaped meanwhile, the first write after Redis returns is refused.
            log.warning("job %s: cannot check ownership, Redis unreachable (%s)", job_id, exc)
            return True

    async def _finish(
        self, job_id: str, asset: PostprocessResponse, created_at: float, stage_log: StageLog
    ) -> None:
        fields = {
            **stage_log.unwritten(),
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
        self.metrics.finished(JobState.completed, COMPLETED, time.time() - created_at)

    async def _fail(
        self, job_id: str, message: str, reason: str, created_at: float, stage_log: StageLog
    ) -> bool:
        """End the job ``failed``; ``reason`` is the metrics' short label (orchestrator/metrics.py)."""
        log.warning("job %s failed: %s", job_id, message)
        message = self.public.text(message)
        recorded = stage_log.unwritten()
        failed = await self._redis(
            job_id,
            "fail",
            lambda: self.store.finish(job_id, self.worker_id, JobState.failed, message=message, **recorded),
        )
        if failed:  # refused: the job was cancelled or taken over meanwhile, and ended elsewhere
            self.metrics.finished(JobState.failed, reason, time.time() - created_at)
            # A failed job has no asset: what its last stage wrote before failing (a preview, a
            # master) is no use to anyone, and would hold disk space until retention.
            self.storage.discard_job_outputs(job_id)
        return bool(failed)
