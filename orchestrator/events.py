"""Job events for `GET /3d/status/{id}?wait=` and `GET /3d/events/{id}`: wake waiting requests when
their job changes.

Every script that changes a job's record PUBLISHes its state on ``3d:events:{id}``
(orchestrator/indexes.py). An orchestrator process holds ONE pub/sub connection, subscribed to the
pattern ``3d:events:*`` once, and fans each message out to the requests waiting on that job: a waiting
request sends no Redis command until its job ends (or the slow re-check below), however many wait;
an event-stream follower is woken by every change, and reads the job's history then.

A message can be missed (the pub/sub connection dropped and came back): a waiter therefore also
re-reads its job every ``FALLBACK_SECONDS``, and every waiter re-reads at once when the connection
is re-established. The subscription is confirmed before a waiter's first read, so an end published
after that read always reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from meshforge import redis_keys as keys
from meshforge.schemas import JobStatus
from orchestrator.indexes import TERMINAL

log = logging.getLogger(__name__)

FALLBACK_SECONDS = 5.0
SUBSCRIBE_WAIT_SECONDS = 1.0  # a waiter waits this long for the subscription, then relies on re-checks
RECONNECT_SECONDS = 0.5
_PREFIX = keys.job_events("")


class JobEvents:
    """The process's one pub/sub listener, started by the first waiter."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._waiters: dict[str, set[asyncio.Event]] = {}  # woken when the job ends
        self._followers: dict[str, set[asyncio.Event]] = {}  # woken by every change
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def wait_for_end(
        self, job_id: str, seconds: float, read: Callable[[], Awaitable[JobStatus]]
    ) -> JobStatus:
        """``read()`` once the job has ended, or after ``seconds``, whichever comes first."""
        deadline = time.monotonic() + seconds
        async with self._registered(self._waiters, job_id) as woken:
            job = await read()
            while not job.state.is_terminal:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(left, FALLBACK_SECONDS))
                woken.clear()
                job = await read()
            return job

    def follow(self, job_id: str) -> contextlib.AbstractAsyncContextManager[asyncio.Event]:
        """An event set whenever the job's record changes (and when missed changes are possible: the
        pub/sub connection came back); the follower clears it before each read. Subscribed on entry."""
        return self._registered(self._followers, job_id)

    @contextlib.asynccontextmanager
    async def _registered(
        self, table: dict[str, set[asyncio.Event]], job_id: str
    ) -> AsyncIterator[asyncio.Event]:
        """A new event in ``table`` under ``job_id`` while inside, with the subscription confirmed."""
        event = asyncio.Event()
        table.setdefault(job_id, set()).add(event)
        try:
            await self._listening()
            yield event
        finally:
            registered = table.get(job_id, set())
            registered.discard(event)
            if not registered:
                table.pop(job_id, None)

    async def _listening(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(keys.JOB_EVENTS_PATTERN)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._deliver(message)
            except (RedisError, OSError) as exc:
                log.warning("job events: lost the pub/sub connection (%s); reconnecting", exc)
            finally:
                self._subscribed.clear()
                self._wake_all()  # whatever was published meanwhile, the waiters re-read
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            await asyncio.sleep(RECONNECT_SECONDS)

    def _deliver(self, message: dict[str, Any]) -> None:
        if message["type"] == "psubscribe":
            self._subscribed.set()
            return
        if message["type"] != "pmessage":
            return
        job_id = str(message["channel"]).removeprefix(_PREFIX)
        for changed in self._followers.get(job_id, ()):
            changed.set()
        state = message["data"]
        if state and state not in TERMINAL:
            return  # only an end (or a deleted record, sent as "") answers a waiting request
        for woken in self._waiters.get(job_id, ()):
            woken.set()

    def _wake_all(self) -> None:
        for waiting in (*self._waiters.values(), *self._followers.values()):
            for woken in waiting:
                woken.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
