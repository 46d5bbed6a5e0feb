"""The dispatcher process: takes jobs off `3d:queue` and drives them through the stage services.

It runs `dispatcher_concurrency` jobs at once, so stages overlap across jobs (one job reconstructs
while the next generates images). Start as many dispatcher processes as you like: the reliable
queue hands each job to exactly one, and gives a dead dispatcher's jobs to the others.

    python -m orchestrator.dispatcher
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from meshforge.http import ReplicaPool, make_client
from meshforge.logging import configure_logging, job_context
from meshforge.metrics import start_metrics_server
from meshforge.outbound import OutboundClient
from meshforge.schemas import JobState
from meshforge.settings import DispatcherSettings, settings_or_exit
from orchestrator.jobs import TERMINAL, Claim, JobStore
from orchestrator.metrics import ATTEMPTS, count_requeued
from orchestrator.pipeline import JobRunner, StagePools
from orchestrator.queue import ReliableQueue
from orchestrator.retention import Sweeper
from orchestrator.retrying import until_redis_answers
from orchestrator.stages import replica_urls
from orchestrator.webhooks import WebhookDeliverer

log = logging.getLogger("dispatcher")
REDIS_RETRY_SECONDS = 1.0
ORPHAN_MESSAGE = "requeued: its dispatcher lost track of it while the queue's database was unreachable"


class Dispatcher:
    def __init__(
        self, settings: DispatcherSettings, redis: Redis, pools: StagePools, worker_id: str | None = None
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queue = ReliableQueue(redis, self.worker_id, settings.lease_seconds)
        self.runner = JobRunner(JobStore(redis), pools, settings, self.worker_id)
        self.sweeper = Sweeper(redis, settings)  # retention; runs as its own task (orchestrator/retention.py)
        self._stopping = asyncio.Event()
        self._running: set[str] = set()  # job ids a slot holds, from BLMOVE until it is done with them
        self._orphans: set[str] = set()  # listed but held by no slot at the last reconciliation
        self.metrics = self.runner.metrics  # orchestrator/metrics.py
        self.metrics.slots.set(settings.dispatcher_concurrency)
        self.webhooks = (  # orchestrator/webhooks.py: off without a secret to sign with
            WebhookDeliverer(
                redis, settings, OutboundClient(allowed_networks=settings.outbound_allowed_networks)
            )
            if settings.webhook_secret
            else None
        )

    async def run(self) -> None:
        await until_redis_answers(self.queue.register, "register")
        requeued = await until_redis_answers(lambda: self.queue.reap(TERMINAL), "reap")
        count_requeued("reaped", requeued)
        if requeued:
            log.info("requeued %d job(s) left by dispatchers that stopped", requeued)
        log.info(
            "dispatcher %s taking jobs, %d at a time", self.worker_id, self.settings.dispatcher_concurrency
        )
        slots = [asyncio.create_task(self._slot()) for _ in range(self.settings.dispatcher_concurrency)]
        background = [asyncio.create_task(self._housekeeping())]
        if self.webhooks is not None:
            background.append(asyncio.create_task(self.webhooks.run()))
        await self._stopping.wait()
        for task in [*slots, *background]:
            task.cancel()
        await asyncio.gather(*slots, *background, return_exceptions=True)
        released = await self.queue.release(TERMINAL)
        count_requeued("released", released)
        log.info("dispatcher stopped; %d unfinished job(s) handed back to the queue", released)

    def stop(self) -> None:
        self._stopping.set()

    async def _slot(self) -> None:
        # Checked as well as cancelled: redis-py can turn a cancellation that lands as BLMOVE's own
        # timeout runs out into an empty answer, and the slot would go on taking jobs.
        while not self._stopping.is_set():
            try:
                await self._take_one()
            except (RedisError, OSError) as exc:
                # Only BLMOVE gets here (every later call waits Redis out). Had it moved a job before
                # the error, the id is in the processing list, and the reconciliation picks it up.
                log.error("lost Redis (%s); retrying in %.0f s", exc, REDIS_RETRY_SECONDS)
                await asyncio.sleep(REDIS_RETRY_SECONDS)

    async def _take_one(self) -> None:
        job_id = await self.queue.claim(timeout=1.0)
        if job_id is None or self._stopping.is_set():
            return  # a job moved while stopping stays in the processing list, for release()
        if job_id in self._running:
            await self._readopt(job_id)
            return
        self._running.add(job_id)  # no await since BLMOVE answered: the reconciliation never races
        try:
            with job_context(job_id):  # every log line about the job names it (meshforge.logging)
                await self._process(job_id)
        finally:
            self._running.discard(job_id)

    async def _readopt(self, job_id: str) -> None:
        """A job one of this dispatcher's slots is running was reaped from it (its lease lapsed, e.g.
        while Redis was down) and has come back to it off the queue. Claiming it again hands it back to
        the slot that runs it (ownership is per dispatcher): running it in a second slot would run it
        twice. If that slot has stopped meanwhile, the reconciliation requeues the id."""
        store, max_attempts = self.runner.store, self.settings.max_attempts
        outcome = await until_redis_answers(
            lambda: store.claim(job_id, self.worker_id, max_attempts), f"job {job_id}: claim again"
        )
        self.metrics.claims.labels(outcome.value).inc()
        log.info("job %s: came back while a slot runs it; left to that slot (%s)", job_id, outcome.value)

    async def _process(self, job_id: str) -> None:
        """Claim and run a job this dispatcher moved to its processing list. The id leaves the list
        only in a script that read the job (see orchestrator/queue.py): a shutdown (this task being
        cancelled) leaves it for release(), a Redis error for the reconciliation."""
        store, max_attempts = self.runner.store, self.settings.max_attempts
        outcome = await until_redis_answers(
            lambda: store.claim(job_id, self.worker_id, max_attempts), f"job {job_id}: claim"
        )
        self.metrics.claims.labels(outcome.value).inc()
        if outcome is Claim.run:
            log.info("job %s: started", job_id)
            try:
                with self.metrics.running.track_inprogress():
                    if await self.runner.run(job_id):
                        return  # its end was written by the script that also took it off the list
            except Exception:
                log.exception("job %s: the runner failed; the reconciliation will requeue it", job_id)
                return
        elif outcome is Claim.exhausted:
            log.warning("job %s: failed, claimed %d times already", job_id, max_attempts)
            # Ended by the claim script itself; its end-to-end time is not observed (no record read).
            self.metrics.finished(JobState.failed, ATTEMPTS, math.nan)
            self.runner.storage.discard_job_outputs(job_id)  # a failed job has no asset (pipeline._fail)
        elif outcome is not Claim.finished:
            log.warning("job %s: not run (%s)", job_id, outcome.value)
        await until_redis_answers(lambda: self.queue.settle(job_id, TERMINAL), f"job {job_id}: settle")

    async def _housekeeping(self) -> None:
        """Keep this dispatcher's lease alive, give back the jobs of dispatchers that died, and make
        this one's processing list agree with the jobs its slots run."""
        beat = self.settings.lease_seconds / 3
        reap_every = max(1, round(self.settings.reap_interval_seconds / beat))
        tick = 0
        while True:
            try:
                await self.queue.heartbeat()
                if tick % reap_every == 0:
                    moved = await self.queue.reap(TERMINAL)
                    count_requeued("reaped", moved)
                    if moved:
                        log.warning("requeued %d job(s) of a dispatcher whose lease expired", moved)
                    await self._reconcile()
                await self.sweeper.tick()  # starts a retention sweep in the background when one is due
            except (RedisError, OSError) as exc:
                log.error("housekeeping could not reach Redis: %s", exc)
            tick += 1
            await asyncio.sleep(beat)

    async def _reconcile(self) -> None:
        """Requeue the ids of this dispatcher's list that no slot has held for two passes in a row.

        Such an id was left by a Redis error (a BLMOVE whose answer was lost, a job whose runner gave
        up): the lease is still renewed, so no reaper would ever free it. Two passes, because a slot
        whose BLMOVE was answered after this pass read the list holds its job by the next one.
        """
        idle = {job_id for job_id in await self.queue.held() if job_id not in self._running}
        for job_id in idle & self._orphans:
            if await self.queue.requeue(job_id, ORPHAN_MESSAGE, TERMINAL):
                count_requeued("orphan", 1)
                log.warning("job %s: requeued, no slot of this dispatcher was running it", job_id)
        self._orphans = idle


def build_pools(settings: DispatcherSettings) -> StagePools:
    """One replica pool per stage of the table (orchestrator.stages), sharing one HTTP client."""
    client = make_client(settings.request_timeout_seconds, settings.internal_token)
    return {
        service: ReplicaPool(
            service,
            urls,
            client,
            deadline_seconds=settings.stage_timeout_seconds,
            retry_seconds=settings.replica_retry_seconds,
        )
        for service, urls in replica_urls(settings).items()
    }


async def main() -> None:
    settings = settings_or_exit("dispatcher", DispatcherSettings)
    configure_logging("dispatcher", settings.log_level, settings.log_format)
    # Its only HTTP: Prometheus's /metrics, behind the fleet's token like every other (meshforge/metrics.py).
    start_metrics_server(settings.host, settings.dispatcher_metrics_port, settings.internal_token)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    dispatcher = Dispatcher(settings, redis, build_pools(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, dispatcher.stop)
    try:
        await dispatcher.run()
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
