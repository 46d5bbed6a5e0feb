"""Pipelining benchmark: does throughput grow with GPU replicas? Stage backends that sleep GPU-like
latencies, 1, 2 and 4 replicas each of flux-service and reconstruction-service.

    .venv/bin/python -m benchmarks.pipelining [--replicas 1,2,4] [--jobs-per-replica 20]
    .venv/bin/python -m benchmarks.pipelining --replicas 1,2 --jobs-per-replica 5    # quick check (~20 s)

Stage services run ``sleeping-benchmark`` backends (benchmarks/stage_backends.py): a prompt's images
come from flux-service (``--image-seconds`` per call, one call per job: one 32² view), reconstruction
sleeps ``--reconstruction-seconds``, post-processing ``--postprocess-seconds``. The flux and
reconstruction replicas start once, at the largest count, with an image-service per count using that
many flux replicas; for each count a dispatcher using that many replicas is started, and the count
times ``--jobs-per-replica`` jobs are submitted at once and waited for through the public API. One
postprocess-service runs its jobs side by side, and image-service calls one flux replica per job at a
time: neither is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from benchmarks.api_clients import collect, submit_backlog
from benchmarks.fleet_bench import BenchFleet, StageSeconds, machine_line, markdown_table
from benchmarks.stage_backends import SLEEPING

HEADER = (
    "replicas (flux + reconstruction)",
    "dispatcher slots",
    "jobs",
    "seconds",
    "jobs/s",
    "speed-up vs {first}",
    "slowest stage's capacity (jobs/s)",
    "share of capacity",
)


def capacity(replicas: int, seconds: StageSeconds) -> float:
    """Jobs per second of the slowest GPU stage: each replica runs one job at a time."""
    return min(replicas / seconds.images, replicas / seconds.reconstruction)


def slots_for(replicas: int, seconds: StageSeconds, asked: int) -> int:
    """Dispatcher slots: as asked, or enough to keep every replica fed. A job holds its slot for all three
    stages, so the slowest stage needs its replicas times the whole job's time, with room for the
    jobs waiting at it."""
    if asked:
        return asked
    per_job = seconds.images + seconds.reconstruction + seconds.postprocess
    return max(4, round(2 * capacity(replicas, seconds) * per_job + replicas))


async def run_config(
    bench: BenchFleet, api_url: str, env: dict[str, str], replicas: int, jobs: int, clients: int
) -> float:
    """Seconds from the first job's submission to the last one's end, with a dispatcher given ``env``
    (``replicas`` of each GPU stage); a warm-up round of one job per replica first."""
    dispatcher = bench.start_dispatcher(f"dispatcher-{replicas}", env)
    try:
        await collect(api_url, await submit_backlog(api_url, replicas, clients), clients)  # warm-up
        done = await collect(api_url, await submit_backlog(api_url, jobs, clients), clients)
    finally:
        bench.stop(dispatcher)
    return max(job.ended for job in done) - min(job.submitted for job in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,4", help="replica counts to compare (comma-separated)")
    parser.add_argument("--jobs-per-replica", type=int, default=20, help="jobs per replica of each run")
    parser.add_argument("--image-seconds", type=float, default=1.0, help="flux-service call")
    parser.add_argument("--reconstruction-seconds", type=float, default=0.5)
    parser.add_argument("--postprocess-seconds", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=0, help="dispatcher slots (0: enough, per count)")
    parser.add_argument("--clients", type=int, default=8, help="API clients submitting and waiting")
    args = parser.parse_args()
    counts = [int(c) for c in args.replicas.split(",") if c.strip()]
    seconds = StageSeconds(args.image_seconds, args.reconstruction_seconds, args.postprocess_seconds)
    if not counts or min(counts) < 1 or args.jobs_per_replica < 1 or args.clients < 1:
        parser.error("--replicas, --jobs-per-replica and --clients must be ≥ 1")
    if min(seconds.images, seconds.reconstruction) <= 0 or seconds.postprocess < 0 or args.concurrency < 0:
        parser.error("image and reconstruction seconds must be > 0, the others ≥ 0")
    asyncio.run(run(args, counts, seconds))


async def run(args: argparse.Namespace, counts: list[int], seconds: StageSeconds) -> None:
    results: list[tuple[int, int, int, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        bench = BenchFleet.start_redis(Path(folder), SLEEPING)
        try:
            stages = bench.start_stages(max(counts), max(counts), seconds)
            # An image-service per count, using that many flux replicas (its calls are one per replica).
            images = {n: bench.start_images(f"image-{n}", stages.flux[:n]) for n in counts}
            api_url = bench.start_api(stages, images[max(counts)])
            bench.wait_healthy([*stages.all, *images.values(), api_url])
            for replicas in counts:
                slots = slots_for(replicas, seconds, args.concurrency)
                env = {
                    **stages.env(images[replicas], flux=replicas, reconstruction=replicas),
                    "MESHFORGE_DISPATCHER_CONCURRENCY": str(slots),
                }
                jobs = replicas * args.jobs_per_replica
                took = await run_config(bench, api_url, env, replicas, jobs, args.clients)
                results.append((replicas, slots, jobs, took))
        finally:
            bench.stop_all()
    first_rate = results[0][2] / results[0][3]
    rows = [
        [
            f"{replicas} + {replicas}",
            str(slots),
            str(jobs),
            f"{took:.2f}",
            f"{jobs / took:.2f}",
            f"{jobs / took / first_rate:.2f}×",
            f"{capacity(replicas, seconds):.2f}",
            f"{jobs / took / capacity(replicas, seconds):.0%}",
        ]
        for replicas, slots, jobs, took in results
    ]
    print(
        f"{machine_line()}\n`{SLEEPING}` backends: images {seconds.images:g} s, reconstruction "
        f"{seconds.reconstruction:g} s, post-processing {seconds.postprocess:g} s per job; 1 image-service, "
        "1 postprocess-service, other settings at their defaults\n"
    )
    header = [h.format(first=f"{counts[0]} + {counts[0]}") for h in HEADER]
    print(markdown_table(header, rows))
    print(
        "\nseconds: the first job's submission to the last one's end (all submitted at once, after a "
        "warm-up job per replica). capacity: the slowest stage's replicas ÷ its seconds per job."
    )


if __name__ == "__main__":
    main()
