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
import os
import signal
import socket
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from meshforge.http import ReplicaPool, make_client
from meshforge.logging import configure_logging
from meshforge.settings import Settings, get_settings
from orchestrator.jobs import TERMINAL, JobStore
from orchestrator.pipeline import JobRunner, StagePools
from orchestrator.queue import ReliableQueue

log = logging.getLogger("dispatcher")
REDIS_RETRY_SECONDS = 1.0


class Dispatcher:
    def __init__(
        self, settings: Settings, redis: Redis, pools: StagePools, worker_id: str | None = None
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.queue = ReliableQueue(redis, self.worker_id, settings.lease_seconds)
        self.runner = JobRunner(JobStore(redis), pools, settings, self.worker_id)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await self.queue.register()
        requeued = await self.queue.reap(TERMINAL)
        if requeued:
            log.info("requeued %d job(s) left by dispatchers that stopped", requeued)
        log.info(
            "dispatcher %s taking jobs, %d at a time", self.worker_id, self.settings.dispatcher_concurrency
        )
        slots = [asyncio.create_task(self._slot()) for _ in range(self.settings.dispatcher_concurrency)]
        housekeeping = asyncio.create_task(self._housekeeping())
        await self._stopping.wait()
        for task in [*slots, housekeeping]:
            task.cancel()
        await asyncio.gather(*slots, housekeeping, return_exceptions=True)
        released = await self.queue.release(TERMINAL)
        log.info("dispatcher stopped; %d unfinished job(s) handed back to the queue", released)

    def stop(self) -> None:
        self._stopping.set()

    async def _slot(self) -> None:
        while True:
            try:
                await self._take_one()
            except (RedisError, OSError) as exc:
                # Redis restarting must not silently kill the slot: log, wait, carry on. A job taken
                # meanwhile stays in the processing list and is requeued if this dispatcher loses its lease.
                log.error("lost Redis (%s); retrying in %.0f s", exc, REDIS_RETRY_SECONDS)
                await asyncio.sleep(REDIS_RETRY_SECONDS)

    async def _take_one(self) -> None:
        job_id = await self.queue.claim(timeout=1.0)
        if job_id is None:
            return
        try:
            if await self.runner.store.claim(job_id, self.worker_id):
                log.info("job %s: started", job_id)
                await self.runner.run(job_id)
        finally:
            # A cancelled slot (shutdown) leaves the job in the processing list for release().
            if not self._stopping.is_set():
                await self.queue.ack(job_id)

    async def _housekeeping(self) -> None:
        """Keep this dispatcher's lease alive and give back the jobs of dispatchers that died."""
        beat = self.settings.lease_seconds / 3
        reap_every = max(1, round(self.settings.reap_interval_seconds / beat))
        tick = 0
        while True:
            try:
                await self.queue.heartbeat()
                if tick % reap_every == 0:
                    moved = await self.queue.reap(TERMINAL)
                    if moved:
                        log.warning("requeued %d job(s) of a dispatcher whose lease expired", moved)
            except (RedisError, OSError) as exc:
                log.error("housekeeping could not reach Redis: %s", exc)
            tick += 1
            await asyncio.sleep(beat)


def build_pools(settings: Settings) -> StagePools:
    client = make_client(settings.request_timeout_seconds)

    def pool(stage: str, urls: list[str]) -> ReplicaPool:
        return ReplicaPool(
            stage,
            urls,
            client,
            deadline_seconds=settings.stage_timeout_seconds,
            retry_seconds=settings.replica_retry_seconds,
        )

    return StagePools(
        images=pool("image-service", settings.image_service_urls),
        reconstruction=pool("reconstruction-service", settings.reconstruction_service_urls),
        postprocess=pool("postprocess-service", settings.postprocess_service_urls),
    )


async def main() -> None:
    settings = get_settings()
    configure_logging("dispatcher", settings.log_level)
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
