"""Per-state job indexes and job events, kept exact by the scripts that change a job's state.

Every job id is in exactly one of the sorted sets ``3d:jobs:state:{state}`` (and, for a job made with
an API key, in ``3d:jobs:key:{name}:state:{state}``), scored by creation time like ``3d:jobs``, so
``GET /3d/jobs?state=`` is one ZCARD and one ZREVRANGE: O(log n + page), whatever the number of jobs.
A finished job is also in ``3d:jobs:ended``, scored by when it ended, which is what retention reads.

The indexes are not updated after the fact: each Lua script (or transaction) that writes a job's
``state`` (or any other public field) calls ``mf_reindex`` (the Lua function ``REINDEX_LUA`` defines) in
the same atomic step, so a crash or a Redis error can never leave a job listed under the wrong state.
``mf_reindex`` also appends the change to the job's history stream ``3d:history:{id}`` and PUBLISHes the
state on ``3d:events:{id}``, which is what ``?wait=`` (orchestrator/events.py) and ``GET /3d/events/{id}``
(orchestrator/event_stream.py) listen to. Like the quota script, these scripts compute key names,
which is fine on one Redis but not on Redis Cluster.

Jobs recorded before the indexes existed are indexed once by ``backfill`` (run by the sweeper when a
dispatcher starts; idempotent, so several dispatchers may run it at once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.schemas import TERMINAL_STATES, JobState

log = logging.getLogger(__name__)

ALL_STATES = [state.value for state in JobState]
TERMINAL = [state.value for state in TERMINAL_STATES]
BACKFILL_CHUNK = 500
# Entries kept per job's history stream: about ten state writes, plus at most one progress write a second.
HISTORY_LENGTH = 1000
HISTORY_AFTER_END_MS = 3_600_000  # a finished job's history, for late resumptions; then its record answers


def lua_key(template: Callable[..., str], *names: str) -> str:
    """A Lua expression building ``template(*names)`` from Lua variables of those names."""
    marked = template(*(f"\0{name}\0" for name in names))
    parts = [part for part in marked.split("\0")]
    return " .. ".join(part if i % 2 else repr(part) for i, part in enumerate(parts) if part)


def lua_set(values: list[str]) -> str:
    return "{" + ", ".join(f"[{value!r}] = true" for value in values) + "}"


# Defines mf_reindex(job, old_state), to call right after a script may have changed the state of the
# job hash ``job`` (old_state: what HGET 'state' said before, false for a new or deleted job). It
# appends the record's public fields to the job's history stream (orchestrator/event_stream.py), moves
# the id between the state indexes, notes the time a job ended, and announces the change.
REINDEX_LUA = f"""
local MF_TERMINAL = {lua_set(TERMINAL)}
local function mf_reindex(job, old_state)
  local job_id = string.sub(job, {len(keys.job("")) + 1})
  local now = redis.call('HMGET', job, 'state', 'api_key', 'created_at', 'progress', 'message', 'stages',
                        'stage_progress')
  local state, api_key = now[1], now[2]
  local channel = {lua_key(keys.job_events, "job_id")}
  if state then
    local history = {lua_key(keys.job_history, "job_id")}
    redis.call('XADD', history, 'MAXLEN', '~', {HISTORY_LENGTH}, '*', 'state', state,
               'progress', now[4] or '0', 'message', now[5] or '', 'stages', now[6] or '{{}}',
               'stage_progress', now[7] or '')
    if MF_TERMINAL[state] then redis.call('PEXPIRE', history, {HISTORY_AFTER_END_MS}) end
  end
  if state == old_state then
    redis.call('PUBLISH', channel, state or '')  -- followers of the event stream see every change
    return
  end
  local keyed = api_key and api_key ~= ''
  if old_state then
    redis.call('ZREM', {lua_key(keys.jobs_in_state, "old_state")}, job_id)
    if keyed then redis.call('ZREM', {lua_key(keys.jobs_of_in_state, "api_key", "old_state")}, job_id) end
  end
  if state then
    local created = now[3] or 0  -- the string itself: the same score as in 3d:jobs, to the digit
    redis.call('ZADD', {lua_key(keys.jobs_in_state, "state")}, created, job_id)
    if keyed then
      redis.call('ZADD', {lua_key(keys.jobs_of_in_state, "api_key", "state")}, created, job_id)
    end
    if MF_TERMINAL[state] then
      local t = redis.call('TIME')  -- Redis's clock: every dispatcher's sweeper reads the same one
      redis.call('ZADD', {keys.JOBS_ENDED!r}, t[1] .. '.' .. string.format('%06d', t[2]), job_id)
      if redis.call('HGET', job, 'webhook_state') == 'pending' then  -- orchestrator/webhooks.py
        redis.call('ZADD', {keys.WEBHOOKS_DUE!r}, 'NX', t[1] .. '.' .. string.format('%06d', t[2]), job_id)
      end
    end
  end
  redis.call('PUBLISH', channel, state or '')
end
"""

# ARGV: job ids. Put each existing job in its state's indexes (and no other), and a finished one in
# 3d:jobs:ended at its last update, unless it is there already. Returns how many were indexed.
_BACKFILL = f"""
local STATES = {{{", ".join(repr(s) for s in ALL_STATES)}}}
local MF_TERMINAL = {lua_set(TERMINAL)}
local indexed = 0
for _, job_id in ipairs(ARGV) do
  local job = {lua_key(keys.job, "job_id")}
  local now = redis.call('HMGET', job, 'state', 'api_key', 'created_at', 'updated_at')
  local state, api_key = now[1], now[2]
  if state then
    local keyed = api_key and api_key ~= ''
    local created = now[3] or 0
    for _, other in ipairs(STATES) do
      if other ~= state then
        redis.call('ZREM', {lua_key(keys.jobs_in_state, "other")}, job_id)
        if keyed then redis.call('ZREM', {lua_key(keys.jobs_of_in_state, "api_key", "other")}, job_id) end
      end
    end
    redis.call('ZADD', {lua_key(keys.jobs_in_state, "state")}, created, job_id)
    if keyed then
      redis.call('ZADD', {lua_key(keys.jobs_of_in_state, "api_key", "state")}, created, job_id)
    end
    if MF_TERMINAL[state] then
      redis.call('ZADD', {keys.JOBS_ENDED!r}, 'NX', now[4] or created, job_id)
    end
    indexed = indexed + 1
  end
end
return indexed
"""


def state_index(state: str, api_key: str | None = None) -> str:
    """The sorted set listing the jobs in ``state`` (only ``api_key``'s when given)."""
    return keys.jobs_of_in_state(api_key, state) if api_key else keys.jobs_in_state(state)


async def backfill(redis: Redis) -> int:
    """Index every job recorded before the per-state indexes existed, once; returns how many were
    indexed (0 when it was done before). Safe to run from several dispatchers at once."""
    if await redis.exists(keys.INDEXES_BUILT):
        return 0
    script = redis.register_script(_BACKFILL)
    indexed, after = 0, "-inf"
    # Paged by score, not by rank: a sweeper deleting jobs meanwhile would shift ranks and skip some.
    # (The client decodes replies, which redis-py's types cannot tell.)
    while page := cast(
        "list[tuple[str, float]]",
        await redis.zrangebyscore(
            keys.JOBS_BY_TIME, after, "+inf", start=0, num=BACKFILL_CHUNK, withscores=True
        ),
    ):
        indexed += int(await script(keys=[], args=[job_id for job_id, _ in page]))
        after = f"({page[-1][1]!r}"
    await redis.set(keys.INDEXES_BUILT, "1")
    if indexed:
        log.info("indexed %d existing job(s) by state", indexed)
    return indexed
