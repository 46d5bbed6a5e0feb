"""Every Redis key meshforge uses, named once. The first two are fixed by the specification."""

from __future__ import annotations

import hashlib

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


def job_history(job_id: str) -> str:
    """Stream of a job's record changes (state, progress, message, stages), for `GET /3d/events/{id}`
    and its `Last-Event-ID` resumption; expires an hour after the job ends."""
    return f"3d:history:{job_id}"


def jobs_of(key_name: str) -> str:
    """Sorted set of the job ids created with one API key, scored by creation time (its /3d/jobs)."""
    return f"3d:jobs:key:{key_name}"


def active_jobs(key_name: str) -> str:
    """Sorted set of one API key's jobs not known to be finished, for its concurrent-jobs limit."""
    return f"3d:active:{key_name}"


def requests_of(key_name: str) -> str:
    """Sorted set of one API key's admitted requests of the last minute, for its rate limit."""
    return f"3d:rate:{key_name}"


def upload(upload_id: str) -> str:
    """String holding the name of the API key an upload (inputs/uploads/<id>/) belongs to."""
    return f"upload:{upload_id}"


JOBS_ENDED = "3d:jobs:ended"
"""Sorted set of finished (completed, failed, cancelled) job ids, scored by when they ended: retention."""

WEBHOOKS_DUE = "3d:webhooks:due"
"""Sorted set of the ended jobs whose webhook is to be delivered, scored by when (orchestrator.webhooks)."""

RETENTION_LOCK = "3d:retention:lock"
"""Held (SET NX PX) by the one dispatcher sweeping expired jobs and files at a time."""

INDEXES_BUILT = "3d:jobs:indexed"
"""Set once the per-state indexes hold every job made before they existed (the one-time backfill)."""

JOB_EVENTS_PATTERN = job_events("*")
"""Every job's event channel (``job_events``), as one pattern subscription."""


def jobs_in_state(state: str) -> str:
    """Sorted set of the job ids in one state, scored by creation time (``/3d/jobs?state=``)."""
    return f"3d:jobs:state:{state}"


def jobs_of_in_state(key_name: str, state: str) -> str:
    """Sorted set of one API key's job ids in one state, scored by creation time."""
    return f"3d:jobs:key:{key_name}:state:{state}"


def idempotency(scope: str, key: str) -> str:
    """String holding the fingerprint and job id of the first submit with an ``Idempotency-Key``, per
    API key name (``scope``); hashed, so that a client's key never shapes a Redis key."""
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
    return f"3d:idempotency:{digest}"
