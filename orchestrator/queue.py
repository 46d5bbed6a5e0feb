"""A reliable job queue on the Redis list `3d:queue`.

Producers LPUSH job ids. Each dispatcher BLMOVEs ids from the right end of the queue onto its own
processing list `3d:processing:{worker}` and keeps a lease key `3d:worker:{worker}` alive with a
heartbeat. A job stays in its dispatcher's processing list until it is finished (acknowledged).
When a dispatcher dies its lease expires; any dispatcher's reaper then moves that processing list
back onto the queue's taking end, in one Lua script, so the job is neither lost nor run twice.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from meshforge import redis_keys as keys

# KEYS: processing list, queue, workers set, lease. ARGV: worker id, now, terminal states...
# Give back every job of a worker whose lease is gone: the unfinished ones go to the queue's taking
# end (first in line: they waited longest), oldest claim nearest the end, marked queued again with
# their owner cleared.
_REQUEUE_DEAD = """
if redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local moved = 0
while true do
  local job_id = redis.call('LPOP', KEYS[1])
  if not job_id then break end
  local job = 'job:' .. job_id
  local state = redis.call('HGET', job, 'state')
  local finished = (state == false)
  for i = 3, #ARGV do if state == ARGV[i] then finished = true end end
  if not finished then
    redis.call('HSET', job, 'state', 'queued', 'owner', '', 'updated_at', ARGV[2], 'progress', 0,
               'message', 'requeued: the dispatcher running it stopped responding')
    redis.call('RPUSH', KEYS[2], job_id)
    moved = moved + 1
  end
end
redis.call('SREM', KEYS[3], ARGV[1])
return moved
"""


class ReliableQueue:
    def __init__(self, redis: Redis, worker_id: str, lease_seconds: float) -> None:
        self.redis = redis
        self.worker_id = worker_id
        self.lease_ms = int(lease_seconds * 1000)
        self._requeue_dead = redis.register_script(_REQUEUE_DEAD)

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
        return await self.redis.blmove(keys.QUEUE, self.processing_key, timeout, "RIGHT", "LEFT")

    async def ack(self, job_id: str) -> None:
        await self.redis.lrem(self.processing_key, 1, job_id)

    async def reap(self, terminal_states: list[str]) -> int:
        """Requeue the jobs of every dispatcher whose lease has expired. Returns how many moved."""
        moved = 0
        for worker in await self.redis.smembers(keys.WORKERS):
            result = await self._requeue_dead(
                keys=[keys.processing(worker), keys.QUEUE, keys.WORKERS, keys.worker_alive(worker)],
                args=[worker, time.time(), *terminal_states],
            )
            moved += max(0, int(result))
        return moved

    async def release(self, terminal_states: list[str]) -> int:
        """On a clean shutdown: drop the lease and hand unfinished jobs straight back."""
        await self.redis.delete(keys.worker_alive(self.worker_id))
        result = await self._requeue_dead(
            keys=[self.processing_key, keys.QUEUE, keys.WORKERS, keys.worker_alive(self.worker_id)],
            args=[self.worker_id, time.time(), *terminal_states],
        )
        return max(0, int(result))
