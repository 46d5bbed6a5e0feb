"""`GET /3d/events/{job_id}`: a job's progress as Server-Sent Events, from its history stream.

Every change to a job's record appends its public fields (state, progress, message, stages, the running
stage's count) to the Redis stream ``3d:history:{id}`` in the same script that makes it
(orchestrator/indexes.py), so any orchestrator replica can serve any job's events, and a client that
reconnects with ``Last-Event-ID`` gets exactly what it missed. Followers are woken by the process's one
pub/sub listener (orchestrator/events.py) and then read the stream with XRANGE on the pooled
connections: a thousand followers cost one pub/sub connection, not a thousand blocked XREADs.

The events, each a JSON object naming the job:
- ``state``: the job entered a state (a stage started); ``state``, ``progress``, ``message``,
  ``stage_progress``;
- ``progress``: progress or message changed within a state (the count of the stage's work, where its
  service tells, in ``stage_progress``: ``{done, total, unit}``, else null);
- ``stage``: a stage finished; ``stage`` and its ``record`` as the status shows it;
- ``end``: the job completed, failed or was cancelled; the whole status record. The stream ends here.
A comment line every ``KEEPALIVE_SECONDS`` keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.errors import NotFound
from meshforge.schemas import JobId, JobStatus
from meshforge.service import documented_errors as errors
from orchestrator.auth import CallerDep, check_job_access
from orchestrator.events import JobEvents
from orchestrator.indexes import TERMINAL
from orchestrator.jobs import JobStore
from orchestrator.records import public_stages, stage_progress

KEEPALIVE_SECONDS = 15.0
PAGE = 100
EVENT_ID_PATTERN = r"^\d{1,20}-\d{1,20}$"  # a Redis stream entry id, as every event's id is
SSE_EVENT_SCHEMA = {
    "type": "object",
    "description": "One Server-Sent Event; `data` is a JSON object",
    "properties": {
        "event": {"type": "string", "enum": ["state", "progress", "stage", "end"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": EVENT_ID_PATTERN},
    },
    "required": ["event", "data"],
}


@dataclass(frozen=True)
class Snapshot:
    """One history entry: the job's public fields after one change."""

    state: str
    progress: int
    message: str
    stages: str  # JSON, as in the record
    stage_progress: str = ""  # JSON, as in the record (orchestrator/stage_progress.py)

    @classmethod
    def of(cls, fields: dict[str, str]) -> Snapshot:
        return cls(
            fields.get("state", ""),
            int(float(fields.get("progress") or 0)),
            fields.get("message", ""),
            fields.get("stages") or "{}",
            fields.get("stage_progress") or "",
        )

    def count(self) -> dict[str, Any] | None:
        counted = stage_progress(self.stage_progress, self.state)
        return counted.model_dump() if counted is not None else None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


def frame(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    lines = [f"event: {event}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    if event_id is not None:
        lines.insert(0, f"id: {event_id}")
    return "\n".join(lines) + "\n\n"


def changes(job_id: str, before: Snapshot | None, after: Snapshot) -> list[tuple[str, dict[str, Any]]]:
    """The events one history entry makes, compared with the one before it."""
    summary = {
        "job_id": job_id,
        "state": after.state,
        "progress": after.progress,
        "message": after.message,
        "stage_progress": after.count(),
    }
    found: list[tuple[str, dict[str, Any]]] = []
    old_stages = public_stages(before.stages) if before is not None else {}
    for name, record in public_stages(after.stages).items():
        if old_stages.get(name) != record:
            found.append(
                ("stage", {"job_id": job_id, "stage": name, "record": record.model_dump(mode="json")})
            )
    # A stage's record is written with the next stage's start: the end is told before the start. A
    # job's own end is told once, by the ``end`` event, with the whole record.
    if after.is_terminal:
        return found
    if before is None or before.state != after.state:
        found.append(("state", summary))
    elif (before.progress, before.message, before.count()) != (after.progress, after.message, after.count()):
        found.append(("progress", summary))
    return found


class JobEventStream:
    def __init__(self, redis: Redis, store: JobStore, events: JobEvents) -> None:
        self.redis = redis
        self.store = store
        self.events = events

    async def frames(self, job_id: str, last_event_id: str | None) -> AsyncIterator[str]:
        """The job's events after ``last_event_id`` (all of them without one), until its end."""
        history = keys.job_history(job_id)
        async with self.events.follow(job_id) as changed:
            before = await self._entry(history, last_event_id) if last_event_id else None
            cursor = f"({last_event_id}" if last_event_id else "-"
            while True:
                changed.clear()
                entries = await self._read(history, cursor)
                if not entries and cursor == "-":
                    # No history: the job predates it, or ended over an hour ago. Its record tells.
                    job = await self._job(job_id)
                    if job is None or job.state.is_terminal:
                        if job is not None:
                            yield frame("end", job.model_dump(mode="json"))
                        return
                    if before is None:
                        summary = {"job_id": job_id, "state": job.state.value, "progress": job.progress}
                        yield frame("state", {**summary, "message": job.message})
                        before = Snapshot(job.state.value, job.progress, job.message, "{}")
                for entry_id, fields in entries:
                    snapshot = Snapshot.of(fields)
                    found = changes(job_id, before, snapshot)
                    for index, (event, data) in enumerate(found):
                        last = index == len(found) - 1 and not snapshot.is_terminal
                        yield frame(event, data, entry_id if last else None)
                    before, cursor = snapshot, f"({entry_id}"
                    if snapshot.is_terminal:
                        yield frame("end", await self._final(job_id, snapshot), entry_id)
                        return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
                if not changed.is_set():
                    yield ": keep-alive\n\n"

    async def _read(self, history: str, cursor: str) -> list[tuple[str, dict[str, str]]]:
        # The client decodes replies (decode_responses=True), which redis-py's types cannot tell.
        return cast("list[tuple[str, dict[str, str]]]", await self.redis.xrange(history, cursor, "+", PAGE))

    async def _entry(self, history: str, entry_id: str) -> Snapshot | None:
        found = await self._read(history, entry_id)
        return Snapshot.of(found[0][1]) if found and found[0][0] == entry_id else None

    async def _job(self, job_id: str) -> JobStatus | None:
        try:
            return await self.store.get(job_id)
        except NotFound:  # deleted while followed (retention): the stream just ends
            return None

    async def _final(self, job_id: str, snapshot: Snapshot) -> dict[str, Any]:
        """The whole status record at the end (the history entry's fields if the record is gone)."""
        job = await self._job(job_id)
        if job is None:
            return {"job_id": job_id, "state": snapshot.state, "message": snapshot.message}
        return job.model_dump(mode="json")


router = APIRouter()


@router.get(
    "/3d/events/{job_id}",
    tags=["jobs"],
    response_class=StreamingResponse,
    responses={
        **errors(401, 403, 404, 422),
        200: {
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
            "description": (
                "Server-Sent Events: `state`, `progress`, `stage`, then `end` with the status record"
            ),
        },
    },
)
async def job_events(
    job_id: JobId,
    request: Request,
    caller: CallerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            pattern=EVENT_ID_PATTERN,
            description="The `id` of the last event received: the stream resumes after it",
        ),
    ] = None,
) -> StreamingResponse:
    """The job's progress as it happens (Server-Sent Events), ending with its final record; any
    orchestrator serves it, and a reconnect with `Last-Event-ID` resumes where it broke off."""
    store: JobStore = request.app.state.jobs
    await check_job_access(store, caller, job_id)
    await store.api_key(job_id)  # a 404 for a job that does not exist, before the stream starts
    stream = JobEventStream(request.app.state.redis, store, request.app.state.events)
    return StreamingResponse(
        stream.frames(job_id, last_event_id),
        media_type="text/event-stream",
        # nginx passes the events on as they come instead of buffering them (X-Accel-Buffering).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
