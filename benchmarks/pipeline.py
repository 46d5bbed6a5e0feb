"""End-to-end benchmark: real services on loopback, offline backends, wall-clock per job and per stage.

    .venv/bin/python -m benchmarks.pipeline [--repeat 5] [--burst 8] [--cases 4]
    .venv/bin/python -m benchmarks.pipeline --repeat 1 --burst 0 --cases 1    # the quick check (~30 s)

Starts its own Redis and fleet (as the tests do), runs each case `--repeat` times one after another,
then a burst of concurrent jobs (none with `--burst 0`), and prints a Markdown table (median seconds).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.fleet import start_fleet, wait_for_end

CASES = [
    ("a red cube", "standard"),
    ("a blue sphere", "standard"),
    ("a tall green cylinder", "standard"),
    ("a red cube", "high"),
]
STAGES = ("generating_images", "reconstructing_3d", "post_processing")


def run_job(api: httpx.Client, prompt: str, tier: str) -> tuple[float, dict]:
    started = time.perf_counter()
    job_id = api.post("/3d/generate", json={"prompt": prompt, "quality_tier": tier}).json()["job_id"]
    status = wait_for_end(api, job_id, timeout=300)
    elapsed = time.perf_counter() - started
    if status["state"] != "completed":
        raise RuntimeError(f"{prompt!r} {tier}: {status['state']}: {status['message']}")
    return elapsed, status


def burst(api: httpx.Client, count: int) -> float:
    started = time.perf_counter()
    ids = [api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"] for _ in range(count)]
    for job_id in ids:
        assert wait_for_end(api, job_id, timeout=600)["state"] == "completed"
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each case (median)")
    parser.add_argument("--burst", type=int, default=8, help="concurrent jobs at the end (0: none)")
    parser.add_argument("--cases", type=int, default=len(CASES), help="run only the first N cases")
    args = parser.parse_args()
    if args.repeat < 1 or not 1 <= args.cases <= len(CASES) or args.burst < 0:
        parser.error(f"--repeat must be ≥ 1, --cases 1–{len(CASES)}, --burst ≥ 0")
    with tempfile.TemporaryDirectory() as folder:
        fleet = start_fleet(Path(folder), flux_replicas=1, reconstruction_replicas=1)
        try:
            with httpx.Client(base_url=fleet.api, timeout=60) as api:
                run_job(api, "a red cube", "standard")  # warm-up: first requests import lazily
                rows = []
                for prompt, tier in CASES[: args.cases]:
                    runs = [run_job(api, prompt, tier) for _ in range(args.repeat)]
                    total = statistics.median(r[0] for r in runs)
                    stages = [statistics.median(r[1]["stages"][s]["seconds"] for r in runs) for s in STAGES]
                    faces = runs[0][1]["message"]
                    rows.append(
                        f"| {prompt} | {tier} | {total:.2f} | "
                        + " | ".join(f"{s:.2f}" for s in stages)
                        + f" | {faces} |"
                    )
                burst_seconds = burst(api, args.burst) if args.burst else None
        finally:
            fleet.stop()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; median of {args.repeat} runs; 1 replica per stage\n"
    )
    print(
        "| prompt | tier | end to end (s) | images (s) | reconstruction (s) | post-processing (s) | result |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if burst_seconds is not None:
        print(
            f"\n{args.burst} concurrent 'a red cube' jobs: {burst_seconds:.2f} s in all, "
            f"{args.burst / burst_seconds:.2f} jobs/s"
        )


if __name__ == "__main__":
    main()
