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
from enum import StrEnum
from typing import Any, cast

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from meshforge import redis_keys as keys
from meshforge.errors import Conflict, NotFound
from meshforge.schemas import (
    TERMINAL_STATES,
    JobState,
    JobStatus,
    WebhookState,
)
from orchestrator.indexes import HISTORY_LENGTH, REINDEX_LUA, state_index
from orchestrator.records import to_status

TERMINAL = [s.value for s in TERMINAL_STATES]
# Every script below that writes a state is registered with REINDEX_LUA in front: its mf_reindex call
# keeps the per-state indexes exact and publishes the job's event in the same step (orchestrator/indexes.py).

# Apply field changes only while the job is owned by ARGV[1] and not finished. Returns 1 if applied.
_FENCED_UPDATE = """
local job = KEYS[1]
if redis.call('HGET', job, 'owner') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', job, 'state')
for i = 3, #ARGV do if state == ARGV[i] then return 0 end end
local fields = cjson.decode(ARGV[2])
for k, v in pairs(fields) do redis.call('HSET', job, k, v) end
mf_reindex(job, state)
return 1
"""

# KEYS: job, the worker's processing list. ARGV: worker, fields (JSON, a terminal state), job id,
# terminal states... Write the job's end and take it off the processing list in one step, while the
# job is still the worker's: a finished job can never be left in a list, nor a listed job lost.
# When the job is already finished, or someone else's, it only leaves the list. Returns 1 if written.
_FINISH = """
local job, mine = KEYS[1], KEYS[2]
local state = redis.call('HGET', job, 'state')
local owner = redis.call('HGET', job, 'owner')
local finished = (state == false)
for i = 4, #ARGV do if state == ARGV[i] then finished = true end end
if finished or owner ~= ARGV[1] then
  if finished or (owner and owner ~= '') then redis.call('LREM', mine, 0, ARGV[3]) end
  return 0
end
local fields = cjson.decode(ARGV[2])
for k, v in pairs(fields) do redis.call('HSET', job, k, v) end
mf_reindex(job, state)
redis.call('LREM', mine, 0, ARGV[3])
return 1
"""

# KEYS: job, the worker's processing list. ARGV: worker, now, job id, max attempts, the give-up
# message, terminal states... Take ownership of a job this worker just moved off the queue. Refused
# (and the id dropped from the list) when the job is finished, gone or another worker's; refused
# without touching anything when the id is no longer in this worker's list: the worker stalled past
# its lease, its list was reaped and the job is (or will be) another's. The (max+1)th claim ends it;
# attempts its dispatcher handed back on a clean shutdown (`released`, orchestrator/queue.py) are not
# counted, up to FREE_RELEASES of them: a job is never requeued forever, whatever stops its dispatchers.
_CLAIM = """
local FREE_RELEASES = 10
local job, mine, job_id = KEYS[1], KEYS[2], ARGV[3]
if not redis.call('LPOS', mine, job_id) then return 'stale' end
local state = redis.call('HGET', job, 'state')
if not state then redis.call('LREM', mine, 0, job_id) return 'gone' end
for i = 6, #ARGV do
  if state == ARGV[i] then redis.call('LREM', mine, 0, job_id) return 'finished' end
end
local owner = redis.call('HGET', job, 'owner')
if owner == ARGV[1] then return 'run' end
if owner and owner ~= '' then redis.call('LREM', mine, 0, job_id) return 'taken' end
local released = math.min(tonumber(redis.call('HGET', job, 'released') or '0'), FREE_RELEASES)
if tonumber(redis.call('HGET', job, 'attempts') or '0') - released >= tonumber(ARGV[4]) then
  redis.call('HSET', job, 'state', 'failed', 'message', ARGV[5], 'owner', '', 'updated_at', ARGV[2])
  mf_reindex(job, state)
  redis.call('LREM', mine, 0, job_id)
  return 'exhausted'
end
redis.call('HSET', job, 'owner', ARGV[1], 'updated_at', ARGV[2])
redis.call('HINCRBY', job, 'attempts', 1)
return 'run'
"""

# Cancel unless finished; take it off the queue if it is still waiting there. Returns the old state.
# A running job stays in its dispatcher's processing list: the dispatcher drops it on noticing.
_CANCEL = """
local job = KEYS[1]
local state = redis.call('HGET', job, 'state')
if not state then return false end
for i = 3, #ARGV do if state == ARGV[i] then return state end end
redis.call('HSET', job, 'state', 'cancelled', 'message', "cancelled at the user's request",
           'updated_at', ARGV[1], 'owner', '')
mf_reindex(job, state)
redis.call('LREM', KEYS[2], 0, ARGV[2])
return state
"""


class Claim(StrEnum):
    """What claiming a job moved off the queue found."""

    run = "run"  # it is this dispatcher's now: run it
    stale = "stale"  # no longer in this dispatcher's processing list: another took it over
    gone = "gone"  # no such job (its record expired or was deleted)
    finished = "finished"  # already completed, failed or cancelled (e.g. cancelled while queued)
    taken = "taken"  # owned by another dispatcher
    exhausted = "exhausted"  # claimed max_attempts times already: now failed


def gave_up_message(attempts: int) -> str:
    return f"gave up after {attempts} attempts: the dispatcher running it stopped each time"


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._fenced_update = redis.register_script(REINDEX_LUA + _FENCED_UPDATE)
        self._claim = redis.register_script(REINDEX_LUA + _CLAIM)
        self._finish = redis.register_script(REINDEX_LUA + _FINISH)
        self._cancel = redis.register_script(REINDEX_LUA + _CANCEL)

    async def create(
        self, kind: str, request: dict[str, Any], *, api_key: str = "", job_id: str | None = None
    ) -> str:
        """Record a new job and put it on the queue, atomically. ``api_key``: the name of the key that
        owns it ("" when keys are off); ``job_id``: one already admitted by the quotas."""
        job_id = job_id or new_job_id()
        now = time.time()
        record: dict[FieldT, EncodableT] = {
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
            "api_key": api_key,
        }
        if request.get("webhook_url"):  # delivered when the job ends (orchestrator/webhooks.py)
            record |= {"webhook_url": request["webhook_url"], "webhook_state": WebhookState.pending.value}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.job(job_id), mapping=record)
            pipe.zadd(keys.JOBS_BY_TIME, {job_id: now})
            pipe.zadd(state_index(JobState.queued.value), {job_id: now})  # orchestrator/indexes.py
            if api_key:
                pipe.zadd(keys.jobs_of(api_key), {job_id: now})
                pipe.zadd(state_index(JobState.queued.value, api_key), {job_id: now})
            # The history's first entry, as mf_reindex writes every later one (orchestrator/indexes.py).
            pipe.xadd(
                keys.job_history(job_id),
                {"state": JobState.queued.value, "progress": 0, "message": record["message"], "stages": "{}"},
                maxlen=HISTORY_LENGTH,
                approximate=True,
            )
            pipe.lpush(keys.QUEUE, job_id)
            await pipe.execute()
        return job_id

    async def raw(self, job_id: str) -> dict[str, str]:
        # The client decodes replies (decode_responses=True), which redis-py's types cannot tell.
        record = cast("dict[str, str]", await self.redis.hgetall(keys.job(job_id)))
        if not record:
            raise NotFound(f'there is no job "{job_id}"')
        return record

    async def api_key(self, job_id: str) -> str:
        """The name of the API key that owns the job ("" when it was made with keys off)."""
        found, api_key = cast(
            "list[str | None]", await self.redis.hmget(keys.job(job_id), ["job_id", "api_key"])
        )
        if found is None:
            raise NotFound(f'there is no job "{job_id}"')
        return api_key or ""

    async def get(self, job_id: str) -> JobStatus:
        return to_status(await self.raw(job_id))

    async def list(
        self, offset: int, limit: int, state: JobState | None, api_key: str | None = None
    ) -> tuple[list[JobStatus], int]:
        """Newest first; only the jobs of key ``api_key`` when given. With a state filter, pages count
        only the jobs in that state. Costs O(log n + page) either way: a state has its own sorted set
        (orchestrator/indexes.py), and the page's records are read in one round trip."""
        if state is None:
            index = keys.jobs_of(api_key) if api_key else keys.JOBS_BY_TIME
        else:
            index = state_index(state.value, api_key)
        total = await self.redis.zcard(index)
        ids = cast("list[str]", await self.redis.zrevrange(index, offset, offset + limit - 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.job(job_id))
            records = await pipe.execute() if ids else []
        return [to_status(record) for record in records if record], total

    async def _maybe(self, job_id: str) -> JobStatus | None:
        record = cast("dict[str, str]", await self.redis.hgetall(keys.job(job_id)))
        return to_status(record) if record else None

    async def claim(self, job_id: str, worker_id: str, max_attempts: int = 3) -> Claim:
        """Own a job that BLMOVE just put in ``worker_id``'s processing list (see ``_CLAIM``)."""
        outcome = await self._claim(
            keys=[keys.job(job_id), keys.processing(worker_id)],
            args=[worker_id, time.time(), job_id, max_attempts, gave_up_message(max_attempts), *TERMINAL],
        )
        return Claim(outcome.decode() if isinstance(outcome, bytes) else outcome)

    async def finish(self, job_id: str, worker_id: str, state: JobState, **fields: Any) -> bool:
        """Write the job's end (completed or failed) and drop it from the worker's processing list, in
        one step; False (nothing written) when the job is no longer this worker's."""
        fields.update(state=state.value, owner="", updated_at=time.time())
        encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return bool(
            await self._finish(
                keys=[keys.job(job_id), keys.processing(worker_id)],
                args=[worker_id, json.dumps(encoded), job_id, *TERMINAL],
            )
        )

    async def update(self, job_id: str, worker_id: str, **fields: Any) -> bool:
        """Fenced write; False means the job is no longer this worker's to change."""
        fields["updated_at"] = time.time()
        encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return bool(
            await self._fenced_update(
                keys=[keys.job(job_id)], args=[worker_id, json.dumps(encoded), *TERMINAL]
            )
        )

    async def enter_stage(
        self, job_id: str, worker_id: str, state: JobState, message: str, progress: int, **fields: Any
    ) -> bool:
        """Move the job into a stage's state; ``fields`` go in the same fenced write (the runner
        passes the stage records it holds, so recording a stage costs no round trip of its own)."""
        return await self.update(
            job_id, worker_id, state=state.value, message=message, progress=progress, **fields
        )

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
