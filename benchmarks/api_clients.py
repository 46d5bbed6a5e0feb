"""The throughput benchmarks' clients of the public API: submit, wait (``?wait=``) and download, timed
on the wall clock so that a job's client-side times compare with its record's."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.stage_backends import BACKEND_SECONDS

STAGES = ("generating_images", "reconstructing_3d", "post_processing")
TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class JobTiming:
    """One job as a client saw it (wall-clock ``time.time()``, comparable with the record's times)."""

    job_id: str
    submitted: float  # before POST /3d/generate
    accepted: float  # its answer
    seen: float = math.nan  # the status answer that showed it finished
    downloaded: float = math.nan  # the asset's last byte
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return str(self.status.get("state", ""))

    def stage(self, name: str) -> dict[str, Any]:
        return dict(self.status["stages"][name])

    @property
    def ended(self) -> float:
        return float(self.status["updated_at"])

    @property
    def first_stage_start(self) -> float:
        return float(self.stage(STAGES[0])["started_at"])

    @property
    def backend_seconds(self) -> float:
        """What the backends said they took, where the stage's answer carries it."""
        return sum(
            float(s.get("detail", {}).get(BACKEND_SECONDS, 0.0)) for s in self.status["stages"].values()
        )


class JobFailed(Exception):
    """A benchmark job ended other than completed: its figures would not be the fleet's."""


JOB_BODY = {"prompt": "a red cube", "output_format": "glb", "seed": 1}


async def submit(api: httpx.AsyncClient) -> JobTiming:
    submitted = time.time()
    response = await api.post("/3d/generate", json=JOB_BODY)
    response.raise_for_status()
    return JobTiming(response.json()["job_id"], submitted, time.time())


async def finish(api: httpx.AsyncClient, job: JobTiming, timeout: float = 900.0) -> JobTiming:
    """Wait for the job's end (``?wait=``, woken by its end event), then download its asset."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"/3d/status/{job.job_id}", params={"wait": 60})
        response.raise_for_status()
        job.status = response.json()
        if job.state in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job.job_id} still {job.state} after {timeout:.0f} s")
    job.seen = time.time()
    if job.state != "completed":
        raise JobFailed(f"job {job.job_id} ended {job.state}: {job.status.get('message')}")
    download = await api.get(f"/3d/download/{job.job_id}")
    download.raise_for_status()
    if not download.content:
        raise JobFailed(f"job {job.job_id} completed with an empty asset")
    job.downloaded = time.time()
    return job


def api_client(base: str, clients: int) -> httpx.AsyncClient:
    """One pooled client for every benchmark client task: a connection each, kept alive."""
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    return httpx.AsyncClient(base_url=base, timeout=120, limits=limits)


async def closed_loop(api_url: str, jobs: int, clients: int) -> list[JobTiming]:
    """``clients`` clients, each submitting a job, waiting for it and downloading it, ``jobs`` in all."""
    done: list[JobTiming] = []
    left = jobs

    async with api_client(api_url, clients) as api:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                done.append(await finish(api, await submit(api)))

        await asyncio.gather(*(client() for _ in range(clients)))
    return done


async def submit_backlog(api_url: str, jobs: int, clients: int) -> list[JobTiming]:
    async with api_client(api_url, clients) as api:
        share = [jobs // clients + (i < jobs % clients) for i in range(clients)]
        batches = await asyncio.gather(*(_submit_n(api, n) for n in share))
    return sorted((job for batch in batches for job in batch), key=lambda job: job.accepted)


async def _submit_n(api: httpx.AsyncClient, count: int) -> list[JobTiming]:
    return [await submit(api) for _ in range(count)]


async def collect(api_url: str, jobs: list[JobTiming], clients: int) -> list[JobTiming]:
    """Wait for and download every job, in the order they were queued, ``clients`` at a time."""
    pending = iter(jobs)
    async with api_client(api_url, clients) as api:

        async def client() -> None:
            for job in pending:
                await finish(api, job)

        await asyncio.gather(*(client() for _ in range(clients)))
    return jobs
