"""When a dispatcher abandons a stage call, tell the stage replicas, and drop a cancelled job's files.

Abandoning the call closes its HTTP connection, which the stage service notices: the work stops at its
next safe point (meshforge.cancellation). The explicit ``POST /work/{job_id}/cancel`` to every replica
makes that immediate and reaches work the connection alone cannot (image-service forwards it to the
flux replicas). Then, for a job that ended cancelled (or failed, e.g. past its deadline), every
``outputs/{job_id}.*`` file is deleted: the replicas answer the cancel only once no rename of that
job's files is in progress, so any file that still appeared before is gone after this.

It runs in the background, so the dispatcher's slot is free at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from meshforge.http import ReplicaPool
from meshforge.schemas import TERMINAL_STATES, JobState
from meshforge.storage import Storage
from orchestrator.jobs import JobStore

log = logging.getLogger(__name__)

_pending: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones


class Abandoning(Protocol):
    """What of the job runner this needs (orchestrator.pipeline.JobRunner)."""

    store: JobStore
    storage: Storage
    worker_id: str
    pools: Mapping[str, ReplicaPool]  # each stage service's pool, by name


def abandon_in_background(runner: Abandoning, job_id: str) -> asyncio.Task[None]:
    """Start telling the replicas that ``job_id``'s work was abandoned; returns at once."""
    pools = list(runner.pools.values())
    task = asyncio.ensure_future(
        abandon(job_id, store=runner.store, storage=runner.storage, worker_id=runner.worker_id, pools=pools)
    )
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return task


async def abandon(
    job_id: str, *, store: JobStore, storage: Storage, worker_id: str, pools: list[ReplicaPool]
) -> None:
    """Never raises: every step is best effort, and logged when it fails."""
    try:
        record = await store.raw(job_id)
    except Exception as exc:  # Redis away: the closed connection still stops the work
        log.warning("job %s: abandoned, but its record cannot be read (%r); replicas not told", job_id, exc)
        return
    state, owner = record.get("state", ""), record.get("owner", "")
    if owner not in ("", worker_id) and state not in TERMINAL_STATES:
        # Taken over: the new owner may be calling the same stage for this job right now, and an explicit
        # cancel would stop that too. Our own call's connection is closed, which stops only our work.
        log.info("job %s: abandoned to dispatcher %s; its replicas' work goes on", job_id, owner)
        return
    stopped = sum(await asyncio.gather(*(pool.cancel(job_id) for pool in pools)))
    ended_without_asset = state in (JobState.cancelled.value, JobState.failed.value)
    removed = storage.discard_job_outputs(job_id) if ended_without_asset else []
    log.info(
        "job %s (%s): replicas stopped %d piece(s) of work; %d output file(s) removed",
        job_id, state, stopped, len(removed),
    )  # fmt: skip
