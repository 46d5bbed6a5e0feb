"""Every Redis key meshforge uses, named once. The first two are fixed by the specification."""

from __future__ import annotations

QUEUE = "3d:queue"
"""List of job ids waiting for a dispatcher (LPUSH in, BLMOVE out from the right)."""

JOBS_BY_TIME = "3d:jobs"
"""Sorted set of every job id, scored by creation time, for listing."""

WORKERS = "3d:workers"
"""Set of dispatcher ids that may hold jobs in a processing list."""


def job(job_id: str) -> str:
    """Hash with state, message, asset_path and the rest of a job's record."""
    return f"job:{job_id}"


def processing(worker_id: str) -> str:
    """List of the job ids one dispatcher has taken and not finished."""
    return f"3d:processing:{worker_id}"


def worker_alive(worker_id: str) -> str:
    """Key with a TTL that a live dispatcher keeps refreshing (its lease on its processing list)."""
    return f"3d:worker:{worker_id}"


def job_events(job_id: str) -> str:
    """Pub/sub channel announcing that a job's record changed."""
    return f"3d:events:{job_id}"
