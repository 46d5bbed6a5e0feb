"""Progress within a stage: while a stage call is in flight, the dispatcher asks the replica holding it
how far the work has got (``GET /work/{job_id}/progress``, meshforge.progress) about once a second, and
writes the job's ``progress`` and ``message`` when the count changed.

The job's progress runs from the stage's start value towards the next stage's (the last stage's
towards 99: only the job's end writes 100) and never goes back within a stage; the message is the
stage's own plus the count, e.g. "generating 8 views of the prompt: 3 of 8 views drawn". The count
itself goes to the record's ``stage_progress``, tagged with the stage's state, so the status shows it
only while the job is in that stage (orchestrator/records.py); entering a stage clears it.

Progress is a nicety: a replica without the route, one that does not answer, and a Redis outage are
logged at debug and skipped; nothing here fails the job, and the end of a stage never waits for a
question to a replica. The first look comes after one interval, so a stage that answers sooner costs
nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import TypeVar

from meshforge.http import ReplicaPool
from meshforge.progress import ProgressAnswer
from orchestrator.jobs import JobStore
from orchestrator.retrying import REDIS_UNREACHABLE
from orchestrator.stages import STAGES, Stage

T = TypeVar("T")
log = logging.getLogger(__name__)

PROGRESS_SECONDS = 1.0  # how often a running stage's replica is asked; never more often
ASK_TIMEOUT_SECONDS = 0.9  # an answer later than this would be stale by the next look anyway
LAST_PROGRESS = 99  # the last stage's progress stops here: 100 is the job's end
VERBS = {"views": "drawn"}  # how a count reads: "3 of 8 views drawn", "12 of 28 steps done"


def describe(answer: ProgressAnswer) -> str:
    return f"{answer.done} of {answer.total} {answer.unit} {VERBS.get(answer.unit, 'done')}"


def progress_span(stage: Stage) -> tuple[int, int]:
    """The job's progress while in ``stage``: from its start value to at most one less than the next
    stage's (LAST_PROGRESS for the last stage)."""
    index = STAGES.index(stage)
    following = STAGES[index + 1].progress - 1 if index + 1 < len(STAGES) else LAST_PROGRESS
    return stage.progress, max(stage.progress, following)


class ProgressFollower:
    """Follows one stage call on the replica holding it and writes the job's progress from it."""

    def __init__(
        self, store: JobStore, worker_id: str, job_id: str, pool: ReplicaPool, stage: Stage, message: str
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._job_id = job_id
        self._pool = pool
        self._state = stage.state
        self._start, self._end = progress_span(stage)
        self._message = message
        self._replica: str | None = None
        self._seen: tuple[int, int, str] | None = None
        self._written = self._start

    def held_by(self, replica: str) -> None:
        """``ReplicaPool.post``'s ``on_attempt``: the replica the call was last sent to holds it."""
        self._replica = replica

    def percent(self, answer: ProgressAnswer) -> int:
        return min(self._end, self._start + int((self._end - self._start) * answer.fraction))

    async def follow(self, stop: asyncio.Event) -> None:
        """Look every PROGRESS_SECONDS until ``stop`` is set; never raises."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROGRESS_SECONDS)
            if stop.is_set():
                return
            try:
                if not await self._look(stop):
                    return
            except Exception as exc:  # a bug here must not take the job down with it
                log.warning("job %s: following its progress failed: %r", self._job_id, exc)
                return

    async def _look(self, stop: asyncio.Event) -> bool:
        """Ask and, if the count changed, write; False once the job is no longer this dispatcher's."""
        if self._replica is None:
            return True
        ask = self._pool.work_progress(self._replica, self._job_id, ASK_TIMEOUT_SECONDS)
        answer = await _unless_stopped(ask, stop)
        if answer is None or not answer.counted or stop.is_set():
            return True
        seen = (answer.done, answer.total, answer.unit)
        if seen == self._seen:
            return True
        progress = max(self._written, self.percent(answer))
        count = {"state": self._state.value, "done": answer.done, "total": answer.total, "unit": answer.unit}
        try:
            # The write is not raced against the stage's end: it must land before the next stage's start.
            mine = await self._store.update(
                self._job_id,
                self._worker_id,
                progress=progress,
                message=f"{self._message}: {describe(answer)}",
                stage_progress=json.dumps(count),
            )
        except REDIS_UNREACHABLE as exc:
            log.debug("job %s: progress not written, Redis unreachable (%r)", self._job_id, exc)
            return True
        if not mine:  # cancelled or taken over: the ownership watcher stops the call
            return False
        self._seen, self._written = seen, progress
        return True


async def _unless_stopped(call: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``call``'s result, or None as soon as ``stop`` is set (the call is then abandoned)."""
    task = asyncio.ensure_future(call)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled ourselves: the question goes too
        task.cancel()
        raise
    finally:
        stopped.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
