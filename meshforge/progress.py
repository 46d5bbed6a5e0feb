"""Progress within a piece of stage work: how far it has got, where the service can tell.

A backend calls ``meshforge.cancellation.report_progress(done, total, unit)`` where it knows a count (a
denoising step, a view drawn, a chunk of a grid, a post-processing step), beside the
``check_cancelled()`` it calls there anyway. The count sits on the work's token as a ``WorkProgress``,
and ``GET /work/{job_id}/progress`` (added with the cancel route, so every stage service has it)
answers it. The dispatcher asks the replica holding a stage call about once a second and writes the
job's progress and message from the answer (orchestrator/stage_progress.py).

This module imports nothing of meshforge.cancellation, which builds on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)


class WorkProgress:
    """One piece of work's count: ``done`` of ``total`` ``unit``; thread-safe (the work's thread
    writes it, the event loop reads it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0
        self._unit = ""

    def report(self, done: int, total: int, unit: str) -> None:
        total = max(0, int(total))
        with self._lock:
            self._done, self._total, self._unit = min(max(0, int(done)), total), total, unit

    def advance(self, by: int = 1) -> None:
        """``by`` more done, in the unit last reported (never past the total)."""
        with self._lock:
            self._done = min(self._done + by, self._total)

    def snapshot(self) -> tuple[int, int, str]:
        with self._lock:
            return self._done, self._total, self._unit


class ProgressAnswer(BaseModel):
    """``GET /work/{job_id}/progress``: how far the job's work here has got. Not running here (never,
    or no more) is an answer too, not an error; ``total`` 0: running, but nothing counted (yet)."""

    running: bool
    done: int = Field(default=0, ge=0)
    total: int = Field(default=0, ge=0)
    unit: str = Field(default="", max_length=40, examples=["views", "steps", "chunks"])

    @property
    def counted(self) -> bool:
        return self.running and self.total > 0

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @classmethod
    def of(cls, works: list[WorkProgress]) -> ProgressAnswer:
        """The answer for the pieces of work of one job here (usually one): the counts in the first
        unit reported, added up."""
        counts = [work.snapshot() for work in works]
        counted = [(done, total, unit) for done, total, unit in counts if total > 0]
        if not counted:
            return cls(running=bool(works))
        unit = counted[0][2]
        same = [(done, total) for done, total, other in counted if other == unit]
        return cls(running=True, done=sum(d for d, _ in same), total=sum(t for _, t in same), unit=unit)


# Makes the answer more exact from elsewhere: image-service adds its flux replicas' progress.
ProgressRefiner = Callable[[str, ProgressAnswer], Awaitable[ProgressAnswer]]


def add_progress_route(
    app: FastAPI,
    works: Callable[[str], list[WorkProgress]],
    check_job_id: Callable[[str], str],
    refine: ProgressRefiner | None = None,
) -> None:
    """``GET /work/{job_id}/progress``: the count of ``job_id``'s work here (``works``: the running
    work's counts), made more exact by ``refine`` where given."""

    @app.get("/work/{job_id}/progress", response_model=ProgressAnswer, tags=["work"])
    async def work_progress(job_id: str) -> ProgressAnswer:
        check_job_id(job_id)
        answer = ProgressAnswer.of(works(job_id))
        if refine is None or not answer.running:
            return answer
        try:
            return await refine(job_id, answer)
        except Exception as exc:  # a nicety: what this process counted itself is still an answer
            log.debug("job %s: could not refine its progress: %r", job_id, exc)
            return answer
