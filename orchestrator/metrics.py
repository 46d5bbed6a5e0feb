"""The control plane's job metrics, and which process exposes each (docs/architecture.md, Metrics and logs).

Several orchestrators may run behind one queue, and any number of dispatchers, so each event is counted
once, by the process where it happens, and Prometheus sums over the processes:

- the orchestrator counts submissions (``meshforge_jobs_submitted_total``) and cancellations (the
  ``cancelled`` series of ``meshforge_jobs_finished_total``: a cancel ends a job in the API's Lua script),
  and reads the queue's gauges from Redis at scrape time: every orchestrator reports the same values,
  so a dashboard takes their ``max``, not their sum;
- the dispatcher counts every other end (``completed``, ``failed`` by reason), where the fenced write
  that ends the job succeeded, and observes the latencies of the jobs and stages it ran.

Each process's set is made on first use (``api_metrics()``, ``dispatcher_metrics()``), so a process never
exports the other's series as zeros. ``reason`` is a short, bounded label, never a message's free text.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import RedisError

from meshforge import redis_keys as keys
from meshforge.schemas import TERMINAL_STATES, JobState
from orchestrator.jobs import Claim
from orchestrator.stages import STAGES

# Why a job ended, as the label ``reason``: a failure's stage prefix (orchestrator/stages.py), or one of
# these.
COMPLETED = "none"
CANCELLED = "cancelled"
DEADLINE = "deadline"  # MESHFORGE_JOB_DEADLINE_SECONDS
ATTEMPTS = "attempts"  # gave up after MESHFORGE_MAX_ATTEMPTS claims
BEFORE_STAGES = "job failed"  # the runner's prefix before any stage started
FAILURE_REASONS = (BEFORE_STAGES, *(stage.failure for stage in STAGES), DEADLINE, ATTEMPTS)
KINDS = ("prompt", "images")
IN_FLIGHT_STATES = tuple(state.value for state in JobState if state not in TERMINAL_STATES)
# Seconds from submission to the end: a job takes seconds on the offline backends, minutes with models.
JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

# Both processes count ends into it (see above), so it is defined once, here.
JOBS_FINISHED = Counter(
    "meshforge_jobs_finished_total",
    "Jobs that ended, by state and a short reason (the failed stage, deadline, attempts, cancelled); "
    "the orchestrator counts cancellations, the dispatcher every other end",
    ["state", "reason"],
)


@dataclass(frozen=True)
class ApiMetrics:
    submitted: Counter
    queue_depth: Gauge
    in_flight: Gauge
    redis_up: Gauge


@functools.cache
def api_metrics() -> ApiMetrics:
    """The orchestrator's metrics, registered once per process."""
    metrics = ApiMetrics(
        submitted=Counter("meshforge_jobs_submitted_total", "Jobs accepted by the API, by kind", ["kind"]),
        queue_depth=Gauge("meshforge_queue_depth", "Job ids waiting in 3d:queue (LLEN), read at scrape time"),
        in_flight=Gauge(
            "meshforge_jobs_in_flight",
            "Jobs in each unfinished state (the 3d:jobs:state:* indexes), read at scrape time",
            ["state"],
        ),
        redis_up=Gauge(
            "meshforge_redis_up", "1 when the orchestrator could read the queue's gauges from Redis"
        ),
    )
    for kind in KINDS:
        metrics.submitted.labels(kind)
    JOBS_FINISHED.labels(JobState.cancelled.value, CANCELLED)
    return metrics


async def refresh_queue_gauges(app: FastAPI) -> None:
    """Read the queue depth and the unfinished states' sizes from Redis, in one round trip; run before
    each scrape of the orchestrator's /metrics. Redis unreachable: the gauges read NaN, not stale values."""
    metrics = api_metrics()
    try:
        async with app.state.redis.pipeline(transaction=False) as pipe:
            pipe.llen(keys.QUEUE)
            for state in IN_FLIGHT_STATES:
                pipe.zcard(keys.jobs_in_state(state))
            depth, *sizes = await pipe.execute()
    except (RedisError, OSError):
        depth, sizes = math.nan, [math.nan] * len(IN_FLIGHT_STATES)
        metrics.redis_up.set(0)
    else:
        metrics.redis_up.set(1)
    metrics.queue_depth.set(depth)
    for state, size in zip(IN_FLIGHT_STATES, sizes, strict=True):
        metrics.in_flight.labels(state).set(size)


@dataclass(frozen=True)
class DispatcherMetrics:
    job_seconds: Histogram
    queue_wait: Histogram
    stage_seconds: Histogram
    running: Gauge
    slots: Gauge
    claims: Counter
    requeued: Counter

    def finished(self, state: JobState, reason: str, seconds: float) -> None:
        """A job this dispatcher ended: counted, and its time since submission observed."""
        JOBS_FINISHED.labels(state.value, reason).inc()
        if math.isfinite(seconds) and seconds >= 0:  # another host's clock may run a little ahead
            self.job_seconds.labels(state.value).observe(seconds)


@functools.cache
def dispatcher_metrics() -> DispatcherMetrics:
    """The dispatcher's metrics, registered once per process."""
    metrics = DispatcherMetrics(
        job_seconds=Histogram(
            "meshforge_job_duration_seconds",
            "End to end: from submission (the record's created_at) to the job's end, by final state",
            ["state"],
            buckets=JOB_BUCKETS,
        ),
        queue_wait=Histogram(
            "meshforge_job_queue_wait_seconds",
            "From submission to a dispatcher's first claim of the job",
            buckets=JOB_BUCKETS,
        ),
        stage_seconds=Histogram(
            "meshforge_stage_duration_seconds",
            "One stage call, from the request to the recorded answer, by stage (its job state)",
            ["stage"],
            buckets=STAGE_BUCKETS,
        ),
        running=Gauge("meshforge_dispatcher_jobs_running", "Jobs this dispatcher is running now"),
        slots=Gauge("meshforge_dispatcher_slots", "Jobs this dispatcher runs at once at most"),
        claims=Counter(
            "meshforge_dispatcher_claims_total",
            "Claims of job ids taken off the queue, by outcome (run, stale, gone, finished, taken, "
            "exhausted)",
            ["outcome"],
        ),
        requeued=Counter(
            "meshforge_dispatcher_requeued_total",
            "Jobs handed back to the queue: of a dispatcher whose lease expired (reaped), of this one's "
            "list that no slot held (orphan), at a clean shutdown (released)",
            ["reason"],
        ),
    )
    for reason in FAILURE_REASONS:
        JOBS_FINISHED.labels(JobState.failed.value, reason)
    JOBS_FINISHED.labels(JobState.completed.value, COMPLETED)
    for state in (JobState.completed, JobState.failed):
        metrics.job_seconds.labels(state.value)
    for stage in STAGES:
        metrics.stage_seconds.labels(stage.state.value)
    for outcome in Claim:
        metrics.claims.labels(outcome.value)
    for reason in ("reaped", "orphan", "released"):
        metrics.requeued.labels(reason)
    return metrics


def count_requeued(reason: str, jobs: int) -> None:
    if jobs > 0:
        dispatcher_metrics().requeued.labels(reason).inc(jobs)
