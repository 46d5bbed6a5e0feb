"""Cancellation that reaches the work: a job's stage work stops at its next safe point when asked.

Each stage service keeps a ``WorkRegistry`` of the work it is running, keyed by job id, each with a
``CancelToken``. The token is set when the dispatcher says the job was abandoned (``POST
/work/{job_id}/cancel``) or when the caller hangs up (the dispatcher stopped waiting, or died).

Blocking work runs in a worker thread with its token in a context variable, so a backend needs no extra
argument: it calls ``check_cancelled()`` at safe points (between denoising steps, chunks, views,
post-processing steps), which raises ``JobCancelled`` once the token is set. The thread then ends, and
the service is free for the next job. A file is committed (renamed into place) under the token's lock
after one last check (``commit_point``), so once the cancel route has answered, no file of that work can
appear any more. At the same safe points, where a count is known, it calls ``report_progress(done, total,
unit)``, which ``GET /work/{job_id}/progress`` answers (meshforge.progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from meshforge.errors import InvalidInput, JobCancelled
from meshforge.progress import ProgressRefiner, WorkProgress, add_progress_route
from meshforge.text import JOB_ID_PATTERN

R = TypeVar("R")
log = logging.getLogger(__name__)

JOB_ID = re.compile(JOB_ID_PATTERN)  # the orchestrator's job ids: uuid4().hex
DISCONNECT_POLL_SECONDS = 0.2


class CancelToken:
    """One piece of running work's stop flag; thread-safe."""

    def __init__(self, job_id: str | None) -> None:
        self.job_id = job_id
        self._event = threading.Event()
        self._lock = threading.Lock()  # held while a file is committed: cancel waits for the rename
        self._callbacks: list[Callable[[], object]] = []
        self.progress = WorkProgress()  # how far the work has got (report_progress)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` (from whichever thread cancels) when the token is set; its result is ignored."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise JobCancelled(f"the work on job {self.job_id} was abandoned: the job was cancelled")

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        with self._lock:
            self.raise_if_cancelled()
            yield


_current: contextvars.ContextVar[CancelToken | None] = contextvars.ContextVar(
    "meshforge_cancel_token", default=None
)


def current_job_id() -> str | None:
    token = _current.get()
    return token.job_id if token is not None else None


def check_cancelled() -> None:
    """A safe point: raise JobCancelled if the current work was cancelled (no-op outside any work)."""
    token = _current.get()
    if token is not None:
        token.raise_if_cancelled()


def on_cancelled(callback: Callable[[], object]) -> None:
    """Run ``callback`` when the current work is cancelled (at once if it already is; never outside
    any work): for work that cannot reach a safe point by itself, such as a child process to kill."""
    token = _current.get()
    if token is not None:
        token.on_cancel(callback)


def current_progress() -> WorkProgress | None:
    """The current work's count (None outside any work)."""
    token = _current.get()
    return token.progress if token is not None else None


def report_progress(done: int, total: int, unit: str) -> None:
    """The current work has done ``done`` of ``total`` ``unit`` ("views", "steps", "chunks"); no-op
    outside any work. Cheap: call it at every safe point that knows a count."""
    token = _current.get()
    if token is not None:
        token.progress.report(done, total, unit)


@contextlib.contextmanager
def commit_point() -> Iterator[None]:
    """Wrap the rename that makes a file visible: refused once the current work is cancelled, and a
    cancel arriving meanwhile waits until the rename is done (so the caller can then delete it)."""
    token = _current.get()
    if token is None:
        yield
        return
    with token.committing():
        yield


class WorkRegistry:
    """The work a service process is running, by job id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, set[CancelToken]] = {}
        self._count = 0

    @property
    def busy(self) -> bool:
        return self._count > 0

    def running(self, job_id: str) -> bool:
        with self._lock:
            return bool(self._running.get(job_id))

    def progress(self, job_id: str) -> list[WorkProgress]:
        with self._lock:
            return [token.progress for token in self._running.get(job_id, ())]

    def open(self, job_id: str | None) -> CancelToken:
        token = CancelToken(job_id)
        with self._lock:
            self._count += 1
            if job_id is not None:
                self._running.setdefault(job_id, set()).add(token)
        return token

    def close(self, token: CancelToken) -> None:
        with self._lock:
            self._count -= 1
            tokens = self._running.get(token.job_id or "")
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self._running[token.job_id or ""]

    def cancel(self, job_id: str) -> int:
        """Set the token of every piece of work of ``job_id``; returns how many there were."""
        with self._lock:
            tokens = list(self._running.get(job_id, ()))
        for token in tokens:
            token.cancel()
        if tokens:
            log.info("job %s: cancelling its running work (%d)", job_id, len(tokens))
        return len(tokens)


WORK = WorkRegistry()  # one per process: what the service's /work/{job_id}/cancel route reaches


def _bound(token: CancelToken, func: Callable[..., R]) -> Callable[..., R]:
    """``func`` with ``token`` as the current token, set inside the thread that runs it."""

    def run(*args: Any) -> R:
        previous = _current.set(token)
        try:
            return func(*args)
        finally:  # pool threads are reused: the next work there must not see this token
            _current.reset(previous)

    return run


async def run_cancellable(
    func: Callable[..., R],
    *args: Any,
    job_id: str | None,
    request: Request | None = None,
    registry: WorkRegistry = WORK,
) -> R:
    """Run blocking ``func(*args)`` in a worker thread as cancellable work of ``job_id``.

    With ``request``, the work is also cancelled when its caller hangs up. Returns once the thread has
    ended: on cancellation that is its next safe point, when it raises JobCancelled.
    """
    token = registry.open(job_id)
    watcher = _watch_caller(request, token)
    try:
        return await run_in_threadpool(_bound(token, func), *args)
    finally:
        registry.close(token)
        if watcher is not None:
            watcher.cancel()


async def await_cancellable(
    coro: Coroutine[Any, Any, R],
    *,
    job_id: str | None,
    request: Request | None = None,
    registry: WorkRegistry = WORK,
) -> R:
    """Await ``coro`` as a task that cancelling ``job_id`` cancels (for async work: image-service).

    The task runs with the token as its current token, so ``current_job_id()`` names the job in it.
    """
    loop = asyncio.get_running_loop()
    token = registry.open(job_id)
    context = contextvars.copy_context()
    context.run(_current.set, token)
    task = loop.create_task(coro, context=context)
    token.on_cancel(lambda: loop.call_soon_threadsafe(task.cancel))
    watcher = _watch_caller(request, token)
    try:
        return await task
    except asyncio.CancelledError:
        if token.cancelled and not task_cancelling():
            raise JobCancelled(f"the work on job {job_id} was abandoned: the job was cancelled") from None
        raise
    finally:
        registry.close(token)
        if watcher is not None:
            watcher.cancel()
        if not task.done():  # we were cancelled ourselves: take the work down with us
            task.cancel()


def task_cancelling() -> bool:
    """Whether the current task itself is being cancelled (not just something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _watch_caller(request: Request | None, token: CancelToken) -> asyncio.Task[None] | None:
    if request is None:
        return None
    return asyncio.ensure_future(_cancel_on_disconnect(request, token))


async def _cancel_on_disconnect(request: Request, token: CancelToken) -> None:
    # The body has been read by now, so the next ASGI message can only be the client hanging up.
    while not token.cancelled:
        if await request.is_disconnected():
            log.info("job %s: the caller hung up, abandoning its work", token.job_id)
            token.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)


class CancelAnswer(BaseModel):
    job_id: str
    cancelled: int  # pieces of running work told to stop here (0: none ran here; nothing to do)
    stopped: bool = True  # the work had stopped when the answer left (else: still at its safe point)


# How long the cancel route waits for the work to reach its next safe point before answering; under
# ReplicaPool.cancel's 2 s timeout. A retried attempt waits for this before it starts, so the leftover
# work of an earlier attempt never runs beside it.
STOP_WAIT_SECONDS = 1.5


def check_job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise InvalidInput(f'"{job_id[:64]}" is not a job id: job ids are 32 lowercase hex characters')
    return job_id


def add_cancel_route(
    app: FastAPI,
    registry: WorkRegistry = WORK,
    forward: Callable[[str], Awaitable[object]] | None = None,
    progress: ProgressRefiner | None = None,
) -> None:
    """``POST /work/{job_id}/cancel``: abandon ``job_id``'s work here. Idempotent: 200 whether or not
    the job ran here. ``forward`` passes the cancel on (image-service → its flux replicas). Also
    ``GET /work/{job_id}/progress`` (meshforge.progress), made more exact by ``progress`` if given."""
    add_progress_route(app, registry.progress, check_job_id, progress)

    @app.post("/work/{job_id}/cancel", response_model=CancelAnswer, tags=["work"])
    async def cancel_work(job_id: str) -> CancelAnswer:
        check_job_id(job_id)
        # Setting a token may wait for a rename in progress (see commit_point): off the event loop.
        cancelled = await run_in_threadpool(registry.cancel, job_id)
        if forward is not None:
            await forward(job_id)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while registry.running(job_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return CancelAnswer(job_id=job_id, cancelled=cancelled, stopped=not registry.running(job_id))
