"""Quotas and backpressure, enforced in Redis so that every orchestrator shares them.

One Lua script, one round trip per admitted request, on Redis's own clock (``TIME``) so that
orchestrators on hosts with skewed clocks still agree:

- the global queue cap (LLEN of ``3d:queue``) → QueueFull (503);
- a key's requests per minute, as a sliding one-minute log of admitted requests → RateLimited (429);
- a key's concurrent jobs, as a set of its jobs not known to be finished. The script prunes that set
  itself by reading each member's ``state``, so the dispatcher needs to know nothing about quotas.

A refused request uses up nothing. Upload requests count against the rate limit only.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.errors import QueueFull, RateLimited
from meshforge.schemas import TERMINAL_STATES
from orchestrator.auth import Caller

CONCURRENCY_RETRY_SECONDS = 5.0  # when a key's jobs will finish is unknown: look again soon
QUEUE_FULL_RETRY_SECONDS = 10.0
# A job id admitted but never recorded (its orchestrator died in between) stops counting after this.
RESERVATION_SECONDS = 30

OK, QUEUE_IS_FULL, TOO_MANY_REQUESTS, TOO_MANY_JOBS = 0, 1, 2, 3

# KEYS: queue, the key's request log, the key's active jobs.
# ARGV: max queued (0: no cap), requests per minute (0: none), max concurrent jobs (0: none),
#       request id, "1" for a job / "0" for an upload, job key prefix, reservation seconds,
#       terminal states...
# Returns {code, n}: n is the retry delay in ms for TOO_MANY_REQUESTS, else the count that was too high.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local max_queued, rpm, max_jobs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local is_job = ARGV[5] == '1'
if is_job and max_queued > 0 then
  local queued = redis.call('LLEN', KEYS[1])
  if queued >= max_queued then return {1, queued} end
end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
  if redis.call('ZCARD', KEYS[2]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {2, math.ceil((tonumber(oldest[2]) + 60 - now) * 1000)}
  end
end
if is_job and max_jobs > 0 then
  local active = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  for i = 1, #active, 2 do
    local state = redis.call('HGET', ARGV[6] .. active[i], 'state')
    local finished = (not state) and tonumber(active[i + 1]) < now - tonumber(ARGV[7])
    for j = 8, #ARGV do if state == ARGV[j] then finished = true end end
    if finished then redis.call('ZREM', KEYS[3], active[i]) end
  end
  local running = redis.call('ZCARD', KEYS[3])
  if running >= max_jobs then return {3, running} end
  redis.call('ZADD', KEYS[3], now, ARGV[4])
end
if rpm > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('EXPIRE', KEYS[2], 61)
end
return {0, 0}
"""


class Quotas:
    def __init__(self, redis: Redis, max_queued_jobs: int) -> None:
        self.max_queued_jobs = max_queued_jobs
        self._admit = redis.register_script(_ADMIT)

    async def admit_job(self, caller: Caller, job_id: str) -> None:
        """Let a new job in, or raise QueueFull / RateLimited. Call it just before creating the job."""
        await self._check(caller, job_id, is_job=True)

    async def admit_upload(self, caller: Caller, upload_id: str) -> None:
        """Count an upload against the caller's rate limit, or raise RateLimited."""
        if caller.requests_per_minute:
            await self._check(caller, upload_id, is_job=False)

    async def _check(self, caller: Caller, request_id: str, *, is_job: bool) -> None:
        if not (self.max_queued_jobs or caller.requests_per_minute or caller.max_concurrent_jobs):
            return
        code, number = await self._admit(
            keys=[keys.QUEUE, keys.requests_of(caller.name), keys.active_jobs(caller.name)],
            args=[
                self.max_queued_jobs,
                caller.requests_per_minute,
                caller.max_concurrent_jobs,
                request_id,
                "1" if is_job else "0",
                keys.job(""),
                RESERVATION_SECONDS,
                *(state.value for state in TERMINAL_STATES),
            ],
        )
        if code == QUEUE_IS_FULL:
            raise QueueFull(
                f"the job queue is full ({number} jobs waiting, the most this server takes): "
                f"try again in {QUEUE_FULL_RETRY_SECONDS:.0f} s",
                retry_after=QUEUE_FULL_RETRY_SECONDS,
            )
        if code == TOO_MANY_REQUESTS:
            wait = max(1, math.ceil(number / 1000))
            raise RateLimited(
                f'API key "{caller.name}" has reached its limit of {caller.requests_per_minute} new jobs '
                f"and uploads per minute: try again in {wait} s",
                retry_after=wait,
            )
        if code == TOO_MANY_JOBS:
            raise RateLimited(
                f'API key "{caller.name}" already has {number} jobs queued or running, its limit of '
                f"{caller.max_concurrent_jobs} concurrent jobs: try again in "
                f"{CONCURRENCY_RETRY_SECONDS:.0f} s, once one has finished (or cancel one)",
                retry_after=CONCURRENCY_RETRY_SECONDS,
            )
