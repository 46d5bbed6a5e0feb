"""Control-plane benchmark: the whole fleet as real processes, with instant stage backends, so that a
job's time is the fleet's own: HTTP, Redis, the dispatcher, files.

    .venv/bin/python -m benchmarks.control_plane [--jobs 1000] [--clients 4] [--depths 10,1000,10000]
    .venv/bin/python -m benchmarks.control_plane --jobs 100 --depths 10 --warmup 10   # quick check (~20 s)

Stage services run ``instant-benchmark`` backends (benchmarks/stage_backends.py: a precomputed 32² PNG,
box mesh and GLB), one 32² view per job. First ``--jobs`` jobs from ``--clients`` closed-loop clients
through the public API (submit, ``?wait=`` for the end, download); then, for each depth, a backlog of
that many jobs submitted with the dispatcher stopped and drained by a fresh one, clients waiting for
and downloading every job. Prints a Markdown table, the closed-loop jobs' time breakdown, and their
Redis commands per job by name. ``--profile DIR`` runs every process under cProfile (slower; it sees
each one's event loop thread, not its worker threads) and prints where their time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.api_clients import STAGES, JobTiming, closed_loop, collect, submit_backlog
from benchmarks.fleet_bench import (
    BenchFleet,
    RedisCounters,
    StageSeconds,
    busy_answers,
    machine_line,
    markdown_table,
    percentile,
    process_cpu_seconds,
)
from benchmarks.stage_backends import INSTANT

HEADER = (
    "queue depth",
    "jobs",
    "jobs/s",
    "added p50 (ms)",
    "added p99 (ms)",
    "in dispatcher p50 (ms)",
    "in dispatcher p99 (ms)",
    "Redis commands / job",
    "Redis round trips / job",
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def row(
    label: str, jobs: list[JobTiming], seconds: float, redis: RedisCounters, client_view: bool
) -> list[str]:
    inside = [job.ended - job.first_stage_start for job in jobs]
    added = [job.downloaded - job.submitted - job.backend_seconds for job in jobs]
    return [
        label,
        f"{len(jobs):,}",
        f"{len(jobs) / seconds:.1f}",
        ms(percentile(added, 0.5)) if client_view else "—",
        ms(percentile(added, 0.99)) if client_view else "—",
        ms(percentile(inside, 0.5)),
        ms(percentile(inside, 0.99)),
        f"{redis.commands / len(jobs):.1f}",
        f"{redis.reads / len(jobs):.1f}",
    ]


def breakdown(jobs: list[JobTiming]) -> str:
    """Where a closed-loop job's time goes, from the client's clock and the job record's stage times."""
    images, mesh, post = STAGES
    steps = {
        "submit (POST /3d/generate answered)": lambda j: j.accepted - j.submitted,
        "queued → images stage called (BLMOVE, claim, read, enter stage)": lambda j: (
            j.first_stage_start - j.accepted
        ),
        "images stage call (image-service → flux-service)": lambda j: j.stage(images)["seconds"],
        "between stages: record images, enter reconstruction": lambda j: (
            j.stage(mesh)["started_at"] - j.stage(images)["finished_at"]
        ),
        "reconstruction call": lambda j: j.stage(mesh)["seconds"],
        "between stages: record reconstruction, enter post-processing": lambda j: (
            j.stage(post)["started_at"] - j.stage(mesh)["finished_at"]
        ),
        "post-processing call": lambda j: j.stage(post)["seconds"],
        "record post-processing, write the end": lambda j: j.ended - j.stage(post)["finished_at"],
        "end → client's ?wait= answered": lambda j: j.seen - j.ended,
        "download (GET /3d/download)": lambda j: j.downloaded - j.seen,
        "total, submit → downloaded": lambda j: j.downloaded - j.submitted,
    }
    rows = []
    for name, step in steps.items():
        values = [float(step(job)) for job in jobs]
        rows.append([name, ms(percentile(values, 0.5)), ms(percentile(values, 0.99))])
    return markdown_table(("step", "p50 (ms)", "p99 (ms)"), rows)


def cpu_table(cpu: dict[str, float], jobs: int) -> str:
    ranked = sorted(cpu.items(), key=lambda item: -item[1])
    rows = [[name, ms(used / jobs)] for name, used in ranked]
    rows.append(["all", ms(sum(cpu.values()) / jobs)])
    return markdown_table(("process", "CPU ms / job"), rows)


def commands_table(redis: RedisCounters, jobs: int) -> str:
    ranked = sorted(redis.by_command.items(), key=lambda item: -item[1])
    rows = [[name, f"{calls / jobs:.2f}"] for name, calls in ranked if calls / jobs >= 0.01]
    return markdown_table(("Redis command", "calls / job"), rows)


def profile_report(folder: Path, top: int = 15) -> str:
    """Each profiled process's functions by their own time (cProfile sees the event loop's thread)."""
    parts = []
    for path in sorted(folder.glob("*.prof")):
        stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]  # pstats's own table
        total = sum(entry[2] for entry in stats.values())
        own_code = {key: entry for key, entry in stats.items() if not key[0].startswith("<frozen")}
        ranked = sorted(own_code.items(), key=lambda item: -item[1][2])[:top]  # imports left out
        rows = [
            [f"{Path(file).name}:{line} {func}", f"{calls:,}", f"{own:.2f}", f"{cumulative:.2f}"]
            for (file, line, func), (_, calls, own, cumulative, _) in ranked
        ]
        parts.append(f"\nprofile of {path.stem} ({total:.1f} s of its own CPU time in all):\n")
        parts.append(markdown_table(("function", "calls", "own s", "cumulative s"), rows))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="closed-loop jobs measured")
    parser.add_argument("--clients", type=int, default=4, help="concurrent API clients")
    parser.add_argument(
        "--depths", default="10,1000,10000", help="backlogs to drain (comma-separated; '' none)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="closed-loop jobs run before measuring")
    parser.add_argument("--replicas", type=int, default=1, help="flux and reconstruction replicas each")
    parser.add_argument("--concurrency", type=int, default=4, help="MESHFORGE_DISPATCHER_CONCURRENCY")
    parser.add_argument("--profile", type=Path, help="cProfile every process into DIR")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",") if d.strip()]
    if min(args.jobs, args.clients, args.replicas, args.concurrency, *depths, 1) < 1 or args.warmup < 0:
        parser.error("--jobs, --clients, --replicas, --concurrency and every depth must be ≥ 1")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args, depths))


@dataclass
class Measured:
    """What a run measured, for the tables printed at its end."""

    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closed_loop: list[JobTiming] = field(default_factory=list)
    closed_redis: RedisCounters = field(default_factory=lambda: RedisCounters(0, 0, {}))
    cpu: dict[str, float] = field(default_factory=dict)


async def measure_closed_loop(
    bench: BenchFleet, api_url: str, args: argparse.Namespace, out: Measured
) -> None:
    before, cpu_before = RedisCounters.read(bench.redis_url), bench.cpu_seconds()
    own_before = process_cpu_seconds(os.getpid())
    jobs = await closed_loop(api_url, args.jobs, args.clients)
    out.closed_redis = RedisCounters.read(bench.redis_url).since(before)
    out.cpu = {name: used - cpu_before[name] for name, used in bench.cpu_seconds().items()}
    out.cpu["benchmark clients"] = process_cpu_seconds(os.getpid()) - own_before
    out.closed_loop = jobs
    wall = max(j.downloaded for j in jobs) - min(j.submitted for j in jobs)
    clients = f"{args.clients} client{'s' if args.clients > 1 else ''}"
    out.rows.append(row(f"0 ({clients}, closed loop)", jobs, wall, out.closed_redis, True))


async def measure_backlog(
    bench: BenchFleet, api_url: str, env: dict[str, str], depth: int, clients: int, out: Measured
) -> None:
    """Queue ``depth`` jobs with no dispatcher running, then drain them with a fresh one."""
    before = RedisCounters.read(bench.redis_url)
    backlog = await submit_backlog(api_url, depth, clients)
    submit_rate = depth / (backlog[-1].accepted - min(j.submitted for j in backlog))
    dispatcher = bench.start_dispatcher(f"dispatcher-depth-{depth}", env)
    try:
        jobs = await collect(api_url, backlog, clients)
    finally:
        bench.stop(dispatcher)
    drained = RedisCounters.read(bench.redis_url).since(before)
    wall = max(j.ended for j in jobs) - min(j.first_stage_start for j in jobs)
    out.rows.append(row(f"{depth:,} (backlog)", jobs, wall, drained, False))
    out.notes.append(f"backlog of {depth:,}: submitted at {submit_rate:.0f} jobs/s (dispatcher stopped)")


async def run(args: argparse.Namespace, depths: list[int]) -> None:
    out = Measured()
    with tempfile.TemporaryDirectory() as folder:
        bench = BenchFleet.start_redis(Path(folder), INSTANT, args.profile)
        try:
            stages = bench.start_stages(args.replicas, args.replicas, StageSeconds())
            image_url = bench.start_images("image", stages.flux)
            api_url = bench.start_api(stages, image_url)
            bench.wait_healthy([*stages.all, image_url, api_url])
            env = {**stages.env(image_url), "MESHFORGE_DISPATCHER_CONCURRENCY": str(args.concurrency)}
            dispatcher = bench.start_dispatcher("dispatcher-closed-loop", env)
            if args.warmup:
                await closed_loop(api_url, args.warmup, args.clients)  # first requests import lazily
            await measure_closed_loop(bench, api_url, args, out)
            bench.stop(dispatcher)
            for depth in depths:
                await measure_backlog(bench, api_url, env, depth, args.clients, out)
            busy = busy_answers([*stages.flux, *stages.reconstruction])
        finally:
            bench.stop_all()
    total_jobs = args.warmup + args.jobs + sum(depths)
    print(
        f"{machine_line()}\nfleet: {args.replicas} flux + {args.replicas} reconstruction replicas, "
        f"1 image-service, 1 postprocess-service, orchestrator, 1 dispatcher with {args.concurrency} slots; "
        f"`{INSTANT}` backends, one 32² view per job; other settings at their defaults\n"
    )
    print(markdown_table(HEADER, out.rows))
    print(
        "\nadded: submit → asset downloaded, as the client saw it, less the backends' own time (~0 here): "
        "closed-loop jobs only (a backlog's jobs wait for the jobs ahead of them). in dispatcher: the job's "
        "first stage call → its end written, from the record. jobs/s: closed loop, first submit → last "
        "download; backlog, first stage call → last end. Redis counts include commands run inside Lua "
        "scripts and, for backlogs, the submits and the dispatcher's start-up; round trips are Redis's "
        "read events."
    )
    print("\n".join(["", *out.notes]))
    print(f"busy (503) answers of the flux and reconstruction replicas: {busy / total_jobs:.2f} per job")
    jobs = len(out.closed_loop)
    print(f"\ntime breakdown of the {jobs} closed-loop jobs:\n")
    print(breakdown(out.closed_loop))
    print(f"\nCPU time of each process per closed-loop job (what bounds jobs/s on {os.cpu_count()} cores):\n")
    print(cpu_table(out.cpu, jobs))
    print(f"\nRedis commands of the {jobs} closed-loop jobs, by name:\n")
    print(commands_table(out.closed_redis, jobs))
    if args.profile is not None:
        print(profile_report(args.profile))


if __name__ == "__main__":
    main()
