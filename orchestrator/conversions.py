"""A completed job in a format other than its own, for ``GET /3d/download/{job_id}?format=…``.

Every completed job keeps a master GLB: its asset for a GLB job, ``outputs/<id>.master.glb`` otherwise
(``Storage.master_path``, written by post-processing). The first download of another format asks
postprocess-service to convert the master (``POST /postprocess/convert``) into
``outputs/<id><the format's suffix>``; later downloads serve that file. A GLB is the master itself.
Every file is named ``<id>.…``, so cancellation and retention (``Storage.discard_job_outputs``) remove
the master and every conversion with the job.

A download must never hang on a busy fleet: a free post-processing replica is waited for
``CONVERT_WAIT_SECONDS`` at most, then the answer is 503 with ``Retry-After``. Requests for the same
conversion in one API process wait for one another (a lock per job and format), so it runs once; the
service writes atomically, so orchestrators side by side at worst convert twice, never serve half a file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from meshforge.errors import Conflict, NotFound, RetryLater, StageUnavailable
from meshforge.http import ReplicaPool, make_client
from meshforge.schemas import JobStatus, OutputFormat
from meshforge.settings import OrchestratorSettings
from meshforge.stage_schemas import ConvertRequest, ConvertResponse
from meshforge.storage import Storage

SERVICE = "postprocess-service"
CONVERT_WAIT_SECONDS = 5.0  # longest a download waits for a free post-processing replica
# Longest one conversion may take before the download gives up: above Blender's own limit for one FBX
# (MESHFORGE_BLENDER_TIMEOUT_SECONDS, 120 s by default). An OBJ, STL or USDZ takes well under a second.
CONVERT_TIMEOUT_SECONDS = 180.0
RETRY_AFTER_SECONDS = 5.0


class ConversionUnavailable(StageUnavailable, RetryLater):
    """No post-processing replica could convert the file in time: 503 with ``Retry-After``."""


class Conversions:
    """The conversions of one API process: the replicas that do them and a lock per job and format."""

    def __init__(self, pool: ReplicaPool, storage: Storage) -> None:
        self._pool = pool
        self._storage = storage
        self._locks: dict[tuple[str, OutputFormat], tuple[asyncio.Lock, int]] = {}

    def master(self, job: JobStatus) -> Path | None:
        """The job's master GLB, or None when it has none (made before conversions, or deleted)."""
        own = OutputFormat(job.request["output_format"])
        if own is OutputFormat.glb:
            path = self._storage.asset_path(job.job_id, own.asset_suffix)
        else:
            path = self._storage.master_path(job.job_id)
        return path if path.is_file() else None

    async def file(
        self, job: JobStatus, output_format: OutputFormat, still_there: Callable[[], Awaitable[object]]
    ) -> Path:
        """The completed job as ``output_format``, converted now unless it was before. ``still_there``
        raises NotFound once the job is gone (expired while the conversion ran)."""
        if output_format is OutputFormat.glb:
            return self._require_master(job, output_format)
        target = self._storage.asset_path(job.job_id, output_format.asset_suffix)
        if target.is_file():
            return target
        master = self._require_master(job, output_format)
        async with self._lock(job.job_id, output_format):
            if target.is_file():  # converted by the request this one waited for
                return target
            await self._convert(job.job_id, master, output_format, target)
        try:
            await still_there()
        except NotFound:
            # The job expired meanwhile and retention has swept its files: this one must not stay behind.
            target.unlink(missing_ok=True)
            raise
        return target

    def _require_master(self, job: JobStatus, output_format: OutputFormat) -> Path:
        master = self.master(job)
        if master is None:
            own = job.request["output_format"]
            raise Conflict(
                f"job {job.job_id} has no master GLB to convert to {output_format.value.upper()} from: it "
                "was made before conversions existed, or its master was deleted. Download it in its own "
                f'format ({own}), or submit it again with "output_format": "{output_format.value}"'
            )
        return master

    async def _convert(self, job_id: str, master: Path, output_format: OutputFormat, target: Path) -> None:
        body = ConvertRequest(
            job_id=job_id, source_path=str(master), output_format=output_format, output_path=str(target)
        )
        try:
            await self._pool.post("/postprocess/convert", body, ConvertResponse)
        except StageUnavailable as exc:
            raise ConversionUnavailable(
                f"the job could not be converted to {output_format.value.upper()} now: every post-processing "
                f"replica is busy or unreachable; try again in {RETRY_AFTER_SECONDS:.0f} s",
                retry_after=RETRY_AFTER_SECONDS,
            ) from exc

    @asynccontextmanager
    async def _lock(self, job_id: str, output_format: OutputFormat) -> AsyncIterator[None]:
        """One lock per (job, format) while anyone holds or waits for it; forgotten after."""
        key = (job_id, output_format)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@asynccontextmanager
async def conversions(
    urls: list[str], storage: Storage, settings: OrchestratorSettings
) -> AsyncIterator[Conversions]:
    """The API process's conversions, on the post-processing replicas ``urls``. Their own client: the
    API's stage client gives up on a call after 5 s, which an FBX conversion can outlast."""
    client = make_client(CONVERT_TIMEOUT_SECONDS, settings.internal_token)
    try:
        pool = ReplicaPool(SERVICE, urls, client, deadline_seconds=CONVERT_WAIT_SECONDS)
        yield Conversions(pool, storage)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
