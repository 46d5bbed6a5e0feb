"""What `GET /3d/jobs?state=` costs as jobs pile up: Redis commands and time per page.

    python -m benchmarks.job_listing [--counts 100,1000,20000]

Starts a redis-server of its own (loopback, temporary folder), records N jobs with JobStore.create (half
of them cancelled), and lists one page of 20 finished jobs, globally and for one API key. Commands
are counted from `INFO commandstats`, so the figures do not depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from meshforge.schemas import JobState
from orchestrator.jobs import JobStore
from tests.fleet import RedisServer

REQUEST = {"prompt": "a red cube", "output_format": "glb", "quality_tier": "standard", "seed": 1}
KEYS = ["", "studio-a", "studio-b"]


async def commands(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(s["calls"] for name, s in stats.items() if name != "cmdstat_info")


async def measure(url: str, count: int) -> tuple[int, float]:
    redis = Redis.from_url(url, decode_responses=True)
    try:
        await redis.flushdb()
        store = JobStore(redis)
        for index in range(count):
            job_id = await store.create("prompt", REQUEST, api_key=KEYS[index % 3])
            if index % 2 == 0:
                await store.cancel(job_id)
        before, started = await commands(redis), time.perf_counter()
        await store.list(0, 20, JobState.cancelled)
        await store.list(0, 20, JobState.cancelled, "studio-a")
        return await commands(redis) - before, (time.perf_counter() - started) * 1000 / 2
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,1000,20000")
    counts = [int(c) for c in parser.parse_args().counts.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer.start(Path(folder))
        try:
            for count in counts:
                used, ms = asyncio.run(measure(server.url, count))
                print(f"{count:>7} jobs: {used} Redis commands for two pages of 20, {ms:.2f} ms per page")
        finally:
            server.process.stop()


if __name__ == "__main__":
    main()
