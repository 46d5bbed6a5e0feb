"""Retention: finished jobs, their files, stale caches and old uploads are deleted by a sweeper.

Every dispatcher runs a ``Sweeper`` from its housekeeping, every ``MESHFORGE_RETENTION_SWEEP_SECONDS``,
as a task of its own so that a long sweep never delays the heartbeat (a late heartbeat would lose the
dispatcher's jobs to the reaper). One sweep:

1. **Expired jobs.** A job that ended (completed, failed, cancelled) more than
   ``MESHFORGE_JOB_RETENTION_SECONDS`` ago (0: never) loses its files first (outputs/<id>.*,
   inputs/jobs/<id>/, cache/jobs/<id>/), then, in one Lua script, its ``job:{id}`` hash and its entries
   in every index. Files first: a crash in between leaves a record whose download answers 404, never
   files no record points to. At most ``MESHFORGE_RETENTION_BATCH`` jobs per sweep, oldest first.
2. **Caches of finished jobs.** cache/jobs/<id>/ (the raw mesh) is of no use once the job has ended:
   it goes at the first sweep at least ``CACHE_GRACE_SECONDS`` after the end. Only ids this Redis knows
   as finished are touched, so a cache folder of a job in another database sharing the disk is safe.
3. **Old uploads.** inputs/uploads/<id>/ older than ``MESHFORGE_UPLOAD_RETENTION_SECONDS`` (0: never)
   that no queued or running job names in its ``image_paths`` goes, with its owner record.

Several dispatchers may sweep at once: a lock (``SET NX PX``) lets one sweep at a time, and every step
is idempotent anyway (a file already gone, a record already deleted, are no error).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.cancellation import JOB_ID
from meshforge.settings import DispatcherSettings
from meshforge.storage import Storage
from orchestrator.auth import upload_id
from orchestrator.indexes import ALL_STATES, TERMINAL, backfill, lua_key, state_index

log = logging.getLogger(__name__)

CACHE_GRACE_SECONDS = 60.0  # a finished job's raw mesh stays this long (someone may be looking at it)
LOCK_SECONDS = 120.0  # a sweeper that died holding the lock holds it no longer than this
LIVE_STATES = [state for state in ALL_STATES if state not in TERMINAL]

# ARGV: cutoff (Redis time), job ids... Delete each job that ended at or before the cutoff: its hash
# and its entries in every index, in one step. A job not (or no longer) due is left alone, so two
# sweepers running this at once delete each job once. Returns the ids deleted.
_EXPIRE = f"""
local deleted = {{}}
for i = 2, #ARGV do
  local job_id = ARGV[i]
  local ended = redis.call('ZSCORE', {keys.JOBS_ENDED!r}, job_id)
  if ended and tonumber(ended) <= tonumber(ARGV[1]) then
    local job = {lua_key(keys.job, "job_id")}
    local now = redis.call('HMGET', job, 'state', 'api_key')
    local state, api_key = now[1], now[2]
    redis.call('DEL', job, {lua_key(keys.job_history, "job_id")})
    redis.call('ZREM', {keys.JOBS_BY_TIME!r}, job_id)
    redis.call('ZREM', {keys.JOBS_ENDED!r}, job_id)
    redis.call('ZREM', {keys.WEBHOOKS_DUE!r}, job_id)
    if state then redis.call('ZREM', {lua_key(keys.jobs_in_state, "state")}, job_id) end
    if api_key and api_key ~= '' then
      redis.call('ZREM', {lua_key(keys.jobs_of, "api_key")}, job_id)
      redis.call('ZREM', {lua_key(keys.active_jobs, "api_key")}, job_id)
      if state then redis.call('ZREM', {lua_key(keys.jobs_of_in_state, "api_key", "state")}, job_id) end
    end
    redis.call('PUBLISH', {lua_key(keys.job_events, "job_id")}, '')
    deleted[#deleted + 1] = job_id
  end
end
return deleted
"""

# KEYS: the lock. ARGV: this sweeper's token. Release the lock only if it is still ours.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class SweepReport:
    """What one sweep deleted."""

    jobs: list[str] = field(default_factory=list)
    caches: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    locked_out: bool = False  # another sweeper held the lock: this one did nothing


class Sweeper:
    def __init__(
        self,
        redis: Redis,
        settings: DispatcherSettings,
        storage: Storage | None = None,
        *,
        use_lock: bool = True,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.storage = storage or Storage(settings)
        self.use_lock = use_lock
        self._expire = redis.register_script(_EXPIRE)
        self._unlock = redis.register_script(_UNLOCK)
        self._indexed = False
        self._next_sweep = 0.0  # time.monotonic() of the next sweep
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> None:
        """Called from the dispatcher's housekeeping at every beat: starts a sweep in the background
        when one is due and none is running. Never raises and never waits for the sweep."""
        if self._task is not None and not self._task.done():
            return
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self.settings.retention_sweep_seconds
        self._task = asyncio.create_task(self._guarded_sweep())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _guarded_sweep(self) -> None:
        try:
            if not self._indexed:
                await backfill(self.redis)  # jobs recorded before the per-state indexes existed
                self._indexed = True
            report = await self.sweep()
            if report.jobs or report.caches or report.uploads:
                log.info(
                    "retention: deleted %d expired job(s), %d finished job cache(s), %d old upload(s)",
                    len(report.jobs),
                    len(report.caches),
                    len(report.uploads),
                )
        except Exception:  # a failed sweep is retried at the next one; housekeeping must go on
            log.exception("retention sweep failed; the next one tries again")

    async def sweep(self) -> SweepReport:
        """One pass of every retention rule, under the sweep lock (see the module docstring)."""
        token = uuid.uuid4().hex
        if self.use_lock and not await self.redis.set(
            keys.RETENTION_LOCK, token, nx=True, px=int(LOCK_SECONDS * 1000)
        ):
            return SweepReport(locked_out=True)
        try:
            now = await self._redis_time()
            return SweepReport(
                jobs=await self._expire_jobs(now),
                caches=await self._drop_finished_caches(now),
                uploads=await self._expire_uploads(),
            )
        finally:
            if self.use_lock:
                await self._unlock(keys=[keys.RETENTION_LOCK], args=[token])

    async def _redis_time(self) -> float:
        """Now on Redis's clock, the one the scripts stamp a job's end with."""
        seconds, micros = await self.redis.time()
        return seconds + micros / 1_000_000

    async def _expire_jobs(self, now: float) -> list[str]:
        retention = self.settings.job_retention_seconds
        if retention <= 0:
            return []
        cutoff = now - retention
        # The client decodes replies (decode_responses=True), which redis-py's types cannot tell.
        due = cast(
            "list[str]",
            await self.redis.zrangebyscore(
                keys.JOBS_ENDED, "-inf", cutoff, start=0, num=self.settings.retention_batch
            ),
        )
        if not due:
            return []
        await asyncio.to_thread(self._delete_job_files, due)
        return list(await self._expire(keys=[], args=[repr(cutoff), *due]))

    def _delete_job_files(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            if not JOB_ID.fullmatch(job_id):  # never a path component we did not make
                continue
            self.storage.discard_job_outputs(job_id)
            shutil.rmtree(self.storage.job_inputs(job_id), ignore_errors=True)
            shutil.rmtree(self.storage.job_cache(job_id), ignore_errors=True)

    async def _drop_finished_caches(self, now: float) -> list[str]:
        folder = self.storage.cache / "jobs"
        names = await asyncio.to_thread(_folder_names, folder)
        ids = [name for name in names if JOB_ID.fullmatch(name)]
        if not ids:
            return []
        ended = await self.redis.zmscore(keys.JOBS_ENDED, ids)
        done = [
            i for i, at in zip(ids, ended, strict=True) if at is not None and at <= now - CACHE_GRACE_SECONDS
        ]
        await asyncio.to_thread(_remove_folders, [folder / i for i in done])
        return done

    async def _expire_uploads(self) -> list[str]:
        retention = self.settings.upload_retention_seconds
        if retention <= 0:
            return []
        folder = self.storage.inputs / "uploads"
        old = await asyncio.to_thread(_folders_older_than, folder, time.time() - retention)
        if not old:
            return []
        unused = sorted(set(old) - await self._uploads_in_use())[: self.settings.retention_batch]
        await asyncio.to_thread(_remove_folders, [folder / name for name in unused])
        if unused:
            await self.redis.delete(*(keys.upload(name) for name in unused))
        return unused

    async def _uploads_in_use(self) -> set[str]:
        """The uploads named by the ``image_paths`` of every job not yet finished."""
        live: list[str] = []
        for state in LIVE_STATES:
            live.extend(cast("list[str]", await self.redis.zrange(state_index(state), 0, -1)))
        if not live:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in live:
                pipe.hget(keys.job(job_id), "request")
            requests = await pipe.execute()
        used: set[str] = set()
        for text in requests:
            for path in json.loads(text or "{}").get("image_paths") or []:
                name = self._upload_of(str(path))
                if name:
                    used.add(name)
        return used

    def _upload_of(self, path: str) -> str | None:
        """The upload an ``image_paths`` entry names: ``uploads/<id>/…``, relative to inputs/ or not."""
        if name := upload_id(path):
            return name
        uploads = self.storage.inputs / "uploads"
        try:
            relative = Path(path).resolve().relative_to(uploads.resolve())
        except (ValueError, OSError):
            return None
        return relative.parts[0] if relative.parts else None


def _folder_names(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in folder.iterdir() if entry.is_dir()]
    except FileNotFoundError:
        return []


def _folders_older_than(folder: Path, cutoff: float) -> list[str]:
    """Sub-folders last changed before ``cutoff`` (an upload's folder is written once, when it is made)."""
    try:
        return [e.name for e in folder.iterdir() if e.is_dir() and e.stat().st_mtime < cutoff]
    except FileNotFoundError:
        return []


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
