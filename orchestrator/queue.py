"""A reliable job queue on the Redis list `3d:queue`.

Producers LPUSH job ids. Each dispatcher BLMOVEs ids from the right end of the queue onto its own
processing list `3d:processing:{worker}` and keeps a lease key `3d:worker:{worker}` alive with a
heartbeat. A job stays in its dispatcher's processing list until it is finished (acknowledged).
When a dispatcher dies its lease expires; any dispatcher's reaper then moves that processing list
back onto the queue's taking end, in one Lua script, so the job is neither lost nor run twice.

A job id leaves a processing list only in a Lua script that has just read the job's record: the one
that writes its end (``JobStore.finish``), a claim that finds it finished or someone else's, ``settle``,
``requeue`` and the reaper. Nothing removes an id blindly, so a Redis error at any point leaves the
id where it was, for the dispatcher's own reconciliation (``requeue``) or the reaper to pick up.
"""

from __future__ import annotations

import time
from typing import cast

from redis.asyncio import Redis

from meshforge import redis_keys as keys
from orchestrator.indexes import REINDEX_LUA  # every state change keeps the state indexes exact

# KEYS: processing list, queue, workers set, lease. ARGV: worker id, now, message, released (1 on
# a clean shutdown), terminal states... Give back every job of a worker whose lease is gone: the
# unfinished ones go to the queue's taking end (first in line: they waited longest), oldest claim
# nearest the end, marked queued again with their owner cleared. A job its worker handed back on a
# clean shutdown counts one `released`, which the claim does not count as an attempt (jobs.py).
_REQUEUE_DEAD = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local moved = 0
while true do
  local job_id = redis.call('LPOP', KEYS[1])
  if not job_id then break end
  local job = 'job:' .. job_id
  local state = redis.call('HGET', job, 'state')
  local owner = redis.call('HGET', job, 'owner')
  local finished = (state == false) or (owner and owner ~= '' and owner ~= ARGV[1])
  for i = 5, #ARGV do if state == ARGV[i] then finished = true end end
  if not finished then
    redis.call('HSET', job, 'state', 'queued', 'owner', '', 'updated_at', ARGV[2], 'progress', 0,
               'message', ARGV[3])
    if ARGV[4] == '1' and owner == ARGV[1] then redis.call('HINCRBY', job, 'released', 1) end
    mf_reindex(job, state)
    redis.call('RPUSH', KEYS[2], job_id)
    moved = moved + 1
  end
end
redis.call('SREM', KEYS[3], ARGV[1])
return moved
"""

# KEYS: job, processing list. ARGV: job id, terminal states... Drop the id from the list if the job is
# finished, gone or owned by another worker: it is nobody's work here any more. Returns 1 if dropped.
_SETTLE = """
local state = redis.call('HGET', KEYS[1], 'state')
local owner = redis.call('HGET', KEYS[1], 'owner')
local done = (state == false) or (owner and owner ~= '' and owner ~= ARGV[2])
for i = 3, #ARGV do if state == ARGV[i] then done = true end end
if not done then return 0 end
return redis.call('LREM', KEYS[2], 0, ARGV[1])
"""

# KEYS: job, processing list, queue. ARGV: job id, worker, now, message, terminal states... Give one
# job of this worker's list that no slot runs back to the queue's taking end (or drop it if it is
# finished or someone else's). Returns 1 if requeued.
_REQUEUE_ONE = """
local job, job_id = KEYS[1], ARGV[1]
if redis.call('LREM', KEYS[2], 0, job_id) == 0 then return 0 end
local state = redis.call('HGET', job, 'state')
local owner = redis.call('HGET', job, 'owner')
if state == false or (owner and owner ~= '' and owner ~= ARGV[2]) then return 0 end
for i = 5, #ARGV do if state == ARGV[i] then return 0 end end
redis.call('HSET', job, 'state', 'queued', 'owner', '', 'updated_at', ARGV[3], 'progress', 0,
           'message', ARGV[4])
mf_reindex(job, state)
redis.call('RPUSH', KEYS[3], job_id)
return 1
"""

REAPED_MESSAGE = "requeued: the dispatcher running it stopped responding"
RELEASED_MESSAGE = "requeued: the dispatcher running it was stopped cleanly (not counted as an attempt)"


class ReliableQueue:
    def __init__(self, redis: Redis, worker_id: str, lease_seconds: float) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.lease_ms = int(lease_seconds * 1000)
        self._requeue_dead = redis.register_script(REINDEX_LUA + _REQUEUE_DEAD)
        self._settle = redis.register_script(_SETTLE)
        self._requeue_one = redis.register_script(REINDEX_LUA + _REQUEUE_ONE)

    @property
    def processing_key(self) -> str:
        return keys.processing(self.worker_id)

    async def register(self) -> None:
        """Announce this dispatcher; the lease is taken before any job is, so no job is ever unleased."""
        await self.heartbeat()

    async def heartbeat(self) -> None:
        """Renew the lease, and re-register: a worker that stalled past its lease was unregistered by a
        reaper, and must be found by the next reaper if it dies later."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.worker_alive(self.worker_id), time.time(), px=self.lease_ms)
            pipe.sadd(keys.WORKERS, self.worker_id)
            await pipe.execute()

    async def claim(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` seconds for a job id; it lands in this worker's processing list."""
        # BLMOVE takes fractional seconds, though redis-py annotates the timeout as int. The client
        # decodes replies (decode_responses=True), which redis-py's types cannot tell: hence the casts.
        job_id = await self.redis.blmove(
            keys.QUEUE,
            self.processing_key,
            timeout,  # type: ignore[arg-type]
            "RIGHT",
            "LEFT",
        )
        return cast("str | None", job_id)

    async def held(self) -> list[str]:
        """The job ids in this worker's processing list."""
        return cast("list[str]", await self.redis.lrange(self.processing_key, 0, -1))

    async def settle(self, job_id: str, terminal_states: list[str]) -> bool:
        """Drop a job from this worker's list if it is finished, gone or another's; True if dropped."""
        result = await self._settle(
            keys=[keys.job(job_id), self.processing_key], args=[job_id, self.worker_id, *terminal_states]
        )
        return bool(result)

    async def requeue(self, job_id: str, message: str, terminal_states: list[str]) -> bool:
        """Give a job of this worker's list back to the queue, first in line; True if requeued."""
        result = await self._requeue_one(
            keys=[keys.job(job_id), self.processing_key, keys.QUEUE],
            args=[job_id, self.worker_id, time.time(), message, *terminal_states],
        )
        return bool(result)

    async def reap(self, terminal_states: list[str]) -> int:
        """Requeue the jobs of every dispatcher whose lease has expired. Returns how many moved."""
        moved = 0
        for worker in cast("set[str]", await self.redis.smembers(keys.WORKERS)):
            result = await self._requeue_dead(
                keys=[keys.processing(worker), keys.QUEUE, keys.WORKERS, keys.worker_alive(worker)],
                args=[worker, time.time(), REAPED_MESSAGE, 0, *terminal_states],
            )
            moved += max(0, int(result))
        return moved

    async def release(self, terminal_states: list[str]) -> int:
        """On a clean shutdown: drop the lease and hand unfinished jobs straight back, without counting
        the attempt they were on (an upgrade is not the job's fault)."""
        await self.redis.delete(keys.worker_alive(self.worker_id))
        result = await self._requeue_dead(
            keys=[self.processing_key, keys.QUEUE, keys.WORKERS, keys.worker_alive(self.worker_id)],
            args=[self.worker_id, time.time(), RELEASED_MESSAGE, 1, *terminal_states],
        )
        return max(0, int(result))
