"""Job records: the `job:{id}` hashes in Redis, and every change made to them.

A job's hash holds the spec's `state`, `message` and `asset_path`, plus the rest of its record
(request, progress, per-stage records, times). Changes made by a dispatcher are fenced by `owner`:
once a job is cancelled, finished or handed to another dispatcher, a stale dispatcher's writes are
refused, so a job never advances twice.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.errors import Conflict, NotFound
from meshforge.schemas import STAGE_PROGRESS, TERMINAL_STATES, JobState, JobStatus, StageRecord

TERMINAL = [s.value for s in TERMINAL_STATES]

# Apply field changes only while the job is owned by ARGV[1] and not finished. Returns 1 if applied.
_FENCED_UPDATE = """
local job = KEYS[1]
if redis.call('HGET', job, 'owner') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', job, 'state')
for i = 3, #ARGV do if state == ARGV[i] then return 0 end end
local fields = cjson.decode(ARGV[2])
for k, v in pairs(fields) do redis.call('HSET', job, k, v) end
return 1
"""

# Take ownership of a job that was just moved off the queue, unless it is already finished.
_CLAIM = """
local job = KEYS[1]
local state = redis.call('HGET', job, 'state')
if not state then return 0 end
for i = 3, #ARGV do if state == ARGV[i] then return 0 end end
redis.call('HSET', job, 'owner', ARGV[1], 'updated_at', ARGV[2])
redis.call('HINCRBY', job, 'attempts', 1)
return 1
"""

# Cancel unless finished; take it off the queue if it is still waiting there. Returns the old state.
_CANCEL = """
local job = KEYS[1]
local state = redis.call('HGET', job, 'state')
if not state then return false end
for i = 3, #ARGV do if state == ARGV[i] then return state end end
redis.call('HSET', job, 'state', 'cancelled', 'message', "cancelled at the user's request",
           'updated_at', ARGV[1], 'owner', '')
redis.call('LREM', KEYS[2], 0, ARGV[2])
return state
"""


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._fenced_update = redis.register_script(_FENCED_UPDATE)
        self._claim = redis.register_script(_CLAIM)
        self._cancel = redis.register_script(_CANCEL)

    async def create(self, kind: str, request: dict[str, Any]) -> str:
        """Record a new job and put it on the queue, atomically."""
        job_id = new_job_id()
        now = time.time()
        record = {
            "job_id": job_id,
            "kind": kind,
            "state": JobState.queued.value,
            "message": "waiting for a free dispatcher",
            "asset_path": "",
            "progress": 0,
            "created_at": now,
            "updated_at": now,
            "request": json.dumps(request),
            "stages": "{}",
            "attempts": 0,
            "owner": "",
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.job(job_id), mapping=record)
            pipe.zadd(keys.JOBS_BY_TIME, {job_id: now})
            pipe.lpush(keys.QUEUE, job_id)
            await pipe.execute()
        return job_id

    async def raw(self, job_id: str) -> dict[str, str]:
        record = await self.redis.hgetall(keys.job(job_id))
        if not record:
            raise NotFound(f'there is no job "{job_id}"')
        return record

    async def get(self, job_id: str) -> JobStatus:
        return to_status(await self.raw(job_id))

    async def list(self, offset: int, limit: int, state: JobState | None) -> tuple[list[JobStatus], int]:
        """Newest first. With a state filter, pages count only the jobs in that state."""
        if state is None:
            total = await self.redis.zcard(keys.JOBS_BY_TIME)
            ids = await self.redis.zrevrange(keys.JOBS_BY_TIME, offset, offset + limit - 1)
            return [s for s in [await self._maybe(i) for i in ids] if s is not None], total
        matching = [
            s
            for s in [await self._maybe(i) for i in await self.redis.zrevrange(keys.JOBS_BY_TIME, 0, -1)]
            if s is not None and s.state == state
        ]
        return matching[offset : offset + limit], len(matching)

    async def _maybe(self, job_id: str) -> JobStatus | None:
        record = await self.redis.hgetall(keys.job(job_id))
        return to_status(record) if record else None

    async def claim(self, job_id: str, worker_id: str) -> bool:
        return bool(await self._claim(keys=[keys.job(job_id)], args=[worker_id, time.time(), *TERMINAL]))

    async def update(self, job_id: str, worker_id: str, **fields: Any) -> bool:
        """Fenced write; False means the job is no longer this worker's to change."""
        fields["updated_at"] = time.time()
        encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return bool(
            await self._fenced_update(
                keys=[keys.job(job_id)], args=[worker_id, json.dumps(encoded), *TERMINAL]
            )
        )

    async def enter_stage(self, job_id: str, worker_id: str, state: JobState, message: str) -> bool:
        return await self.update(
            job_id, worker_id, state=state.value, message=message, progress=STAGE_PROGRESS[state]
        )

    async def record_stage(self, job_id: str, worker_id: str, stage: JobState, record: StageRecord) -> bool:
        stages = json.loads((await self.raw(job_id)).get("stages") or "{}")
        stages[stage.value] = record.model_dump()
        return await self.update(job_id, worker_id, stages=json.dumps(stages))

    async def cancel(self, job_id: str) -> None:
        previous = await self._cancel(
            keys=[keys.job(job_id), keys.QUEUE], args=[time.time(), job_id, *TERMINAL]
        )
        if previous is None:
            raise NotFound(f'there is no job "{job_id}"')
        previous = previous.decode() if isinstance(previous, bytes) else previous
        if previous in TERMINAL:
            raise Conflict(f"job {job_id} is already {previous} and cannot be cancelled")

    async def is_still_mine(self, job_id: str, worker_id: str) -> bool:
        owner, state = await self.redis.hmget(keys.job(job_id), ["owner", "state"])
        return owner == worker_id and state not in TERMINAL


def to_status(record: dict[str, str]) -> JobStatus:
    job_id = record["job_id"]
    state = JobState(record["state"])
    asset_path = record.get("asset_path") or None
    stages = {name: StageRecord(**value) for name, value in json.loads(record.get("stages") or "{}").items()}
    return JobStatus(
        job_id=job_id,
        kind=record.get("kind", ""),
        state=state,
        message=record.get("message", ""),
        asset_path=asset_path,
        download_url=f"/3d/download/{job_id}" if state == JobState.completed else None,
        preview_path=record.get("preview_path") or None,
        preview_url=f"/3d/preview/{job_id}" if record.get("preview_path") else None,
        progress=int(float(record.get("progress") or 0)),
        created_at=float(record["created_at"]),
        updated_at=float(record["updated_at"]),
        request=json.loads(record.get("request") or "{}"),
        stages=stages,
        attempts=int(record.get("attempts") or 0),
    )
