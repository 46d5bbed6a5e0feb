"""Fault soak: many jobs through the real fleet while dispatchers, stage services and Redis are killed.

    .venv/bin/python -m benchmarks.soak [--jobs 1000] [--clients 8] [--dispatchers 3] [--seed 1]

Starts Redis (append-only file, fsync always) and the fleet on the offline backends, with several
dispatchers, then submits jobs from concurrent clients while a fault injector, in turn:
SIGKILLs a dispatcher (and starts a new one), SIGKILLs each stage service (and restarts it on its port),
SIGKILLs Redis (and restarts it on its AOF), stalls a dispatcher past its lease (SIGSTOP, SIGCONT), and
the clients cancel some jobs at random. At the end it prints submitted / completed / failed (by reason) /
cancelled / lost / ran-twice and the latency of completed jobs.

*lost*: a job that was accepted (it has a job id) and did not end within the drain time, or whose
record disappeared. *ran-twice*: two stretches of work on the same job that overlap in time, read from
the stage services' own `work started` / `work ended` log lines (meshforge.logging.work_span), not from
the job record. The jobs run at a reduced quality tier (``SOAK_TIERS``: 4 small views, a coarse grid) so
that a thousand of them fit in minutes on two cores; the faults are what is being measured.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx

from tests.fleet import Fleet, Process, start_fleet, wait_until

SOAK_TIER = {"views": 4, "image_size": 64, "voxel_resolution": 32, "target_faces": 500, "texture_size": 64}
SOAK_TIERS = json.dumps({"standard": SOAK_TIER, "high": SOAK_TIER})
TERMINAL = ("completed", "failed", "cancelled")
PROMPTS = ("a red cube", "a blue sphere", "a green cylinder", "a yellow cone")
FAULT_KINDS = (
    "kill_dispatcher", "kill_flux", "kill_image", "kill_reconstruction", "kill_postprocess",
    "restart_redis", "stall_dispatcher",
)  # fmt: skip
DISPATCHED_STAGES = ("image-service", "reconstruction-service", "postprocess-service")
_WORK_LINE = re.compile(r"work (started|ended) job=(\w+) stage=(\S+) at=([\d.]+)")


@dataclass
class JobOutcome:
    job_id: str
    submitted_at: float
    state: str = "lost"
    message: str = ""
    ended_at: float | None = None
    cancel_requested: bool = False


@dataclass
class SoakReport:
    jobs: dict[str, JobOutcome] = field(default_factory=dict)
    submit_refusals: int = 0
    faults: Counter = field(default_factory=Counter)
    overlaps: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0


class SoakFleet:
    """The fleet, plus the means to kill and restart any of its processes on the same ports."""

    def __init__(self, data_dir: Path, dispatchers: int) -> None:
        self.fleet: Fleet = start_fleet(data_dir, extra_env={"MESHFORGE_TIERS": SOAK_TIERS})
        self._enable_aof()
        self._restarts: Counter[str] = Counter()
        self.killed_at: dict[str, float] = {}
        for _ in range(dispatchers - 1):
            self.start_dispatcher()

    # --- Redis on its append-only file ----------------------------------------------------------
    def _enable_aof(self) -> None:
        import redis

        client = redis.Redis(port=self.fleet.redis.port)
        client.config_set("appendfsync", "always")
        client.config_set("appendonly", "yes")
        wait_until(
            lambda: (
                client.info("persistence")["aof_rewrite_in_progress"] == 0
                and client.info("persistence")["aof_enabled"] == 1
            ),
            30,
            "the first AOF rewrite",
        )
        client.close()

    def restart_redis(self, down_seconds: float) -> None:
        server = self.fleet.redis
        args = list(cast("list[str]", server.process.popen.args))  # the fleet passes an argument list
        args = [*args[: args.index("--appendonly")], "--appendonly", "yes", "--appendfsync", "always"]
        args += ["--dir", str(Path(self.fleet.data_dir) / "redis")]
        server.process.popen.send_signal(signal.SIGKILL)
        server.process.popen.wait()
        time.sleep(down_seconds)
        log = server.process.log
        popen = subprocess.Popen(args, stdout=log.open("a"), stderr=subprocess.STDOUT)
        server.process = Process("redis", popen, log)
        wait_until(lambda: _redis_loaded(server.port), 30, "redis-server after restart")

    # --- services ------------------------------------------------------------------------------
    def processes(self, prefix: str) -> list[Process]:
        return [p for p in self.fleet.processes if p.name.startswith(prefix) and p.popen.poll() is None]

    def start_dispatcher(self) -> Process:
        self._restarts["dispatcher"] += 1
        return self.fleet.start_service(
            f"dispatcher-{self._restarts['dispatcher']}", "orchestrator.dispatcher"
        )

    def kill(self, process: Process) -> None:
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait()
        self.killed_at[process.name] = time.time()
        self.fleet.processes.remove(process)

    def restart_stage(self, process: Process) -> None:
        """Kill a stage service and start it again on the same port, with a log of its own."""
        base, module, port_var = _stage_of(process.name)
        port = _port_of(self.fleet, process)
        self.kill(process)
        self._restarts[base] += 1
        self.fleet.start_service(f"{base}-r{self._restarts[base]}", module, port_var, **{port_var: str(port)})

    def stop(self) -> None:
        self.fleet.stop()


_STAGES = {
    "flux": ("flux_service", "MESHFORGE_FLUX_SERVICE_PORT"),
    "reconstruction": ("reconstruction_service", "MESHFORGE_RECONSTRUCTION_SERVICE_PORT"),
    "image": ("image_service", "MESHFORGE_IMAGE_SERVICE_PORT"),
    "postprocess": ("postprocess_service", "MESHFORGE_POSTPROCESS_SERVICE_PORT"),
}
_REPLICA_URLS = {
    "flux": "MESHFORGE_FLUX_SERVICE_URLS",
    "reconstruction": "MESHFORGE_RECONSTRUCTION_SERVICE_URLS",
    "image": "MESHFORGE_IMAGE_SERVICE_URLS",
    "postprocess": "MESHFORGE_POSTPROCESS_SERVICE_URLS",
}


def _stage_of(name: str) -> tuple[str, str, str]:
    """("flux-1", module, port variable) for a process named flux-1 or flux-1-r3 (its third restart)."""
    base = re.sub(r"-r\d+$", "", name)
    module, port_var = _STAGES[base.split("-")[0]]
    return base, module, port_var


def _port_of(fleet: Fleet, process: Process) -> int:
    """A stage process's port: replica N of a stage (flux-N) is the N-th URL of the stage's list."""
    base, _, _ = _stage_of(process.name)
    stage, _, index = base.partition("-")
    urls = fleet.env[_REPLICA_URLS[stage]].split(",")
    return int(urls[int(index or 0)].rsplit(":", 1)[1])


def _redis_loaded(port: int) -> bool:
    import redis

    with redis.Redis(port=port, socket_timeout=1) as client:
        return client.info("persistence")["loading"] == 0


class FaultInjector(threading.Thread):
    """Injects one fault every ``interval`` seconds, cycling through every kind so each occurs."""

    def __init__(self, soak: SoakFleet, report: SoakReport, interval: float, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.soak, self.report, self.interval, self.rng = soak, report, interval, rng
        self.stopping = threading.Event()
        self.cycled = threading.Event()  # set once every kind of fault has been injected
        self.lease = float(soak.fleet.env["MESHFORGE_LEASE_SECONDS"])

    def run(self) -> None:
        kinds = FAULT_KINDS
        turn = 0
        while not self.stopping.wait(self.interval):
            kind = kinds[turn % len(kinds)]
            turn += 1
            try:
                self.inject(kind)
                self.report.faults[kind] += 1
            except Exception as exc:  # a fault that could not be injected is reported, not fatal
                self.report.faults[f"{kind} (failed: {type(exc).__name__}: {exc})"] += 1
            if turn == len(kinds):
                self.cycled.set()

    def inject(self, kind: str) -> None:
        soak = self.soak
        if kind == "kill_dispatcher":
            soak.kill(self.rng.choice(soak.processes("dispatcher")))
            soak.start_dispatcher()
        elif kind == "stall_dispatcher":
            victim = self.rng.choice(soak.processes("dispatcher"))
            victim.popen.send_signal(signal.SIGSTOP)
            time.sleep(self.lease * 1.5 + 1)
            victim.popen.send_signal(signal.SIGCONT)
        elif kind == "restart_redis":
            soak.restart_redis(down_seconds=self.rng.uniform(1.0, 4.0))
        else:
            soak.restart_stage(self.rng.choice(soak.processes(kind.removeprefix("kill_"))))


def client_loop(api: str, next_job, report: SoakReport, cancel_ratio: float, rng: random.Random) -> None:
    with httpx.Client(base_url=api, timeout=30) as client:
        while (index := next_job()) is not None:
            body = {"prompt": PROMPTS[index % len(PROMPTS)], "seed": index}
            job_id = _submit(client, body, report)
            if job_id is None:
                continue
            outcome = report.jobs[job_id]
            if rng.random() < cancel_ratio:
                time.sleep(rng.uniform(0, 1.5))
                outcome.cancel_requested = (
                    _call(lambda jid=job_id: client.post(f"/3d/cancel/{jid}")) is not None
                )
            _follow(client, outcome, deadline=time.monotonic() + 300)


def _submit(client: httpx.Client, body: dict, report: SoakReport) -> str | None:
    """Submit, retrying while Redis is down; None if it never went through."""
    for _ in range(60):
        response = _call(lambda: client.post("/3d/generate", json=body))
        if response is not None and response.status_code == 200:
            job_id = response.json()["job_id"]
            report.jobs[job_id] = JobOutcome(job_id, time.time())
            return job_id
        report.submit_refusals += 1
        time.sleep(0.5)
    return None


def _follow(client: httpx.Client, outcome: JobOutcome, deadline: float) -> None:
    while time.monotonic() < deadline:
        response = _call(lambda: client.get(f"/3d/status/{outcome.job_id}", params={"wait": 5}))
        if response is None or response.status_code >= 500:
            time.sleep(0.5)
            continue
        if response.status_code == 404:
            outcome.state, outcome.message = "lost", "the job's record disappeared"
            return
        status = response.json()
        if status["state"] in TERMINAL:
            outcome.state, outcome.message, outcome.ended_at = status["state"], status["message"], time.time()
            return


def _call(request):
    try:
        return request()
    except httpx.HTTPError:
        return None


def find_overlaps(log_dir: Path, killed_at: dict[str, float]) -> list[tuple[str, str, str]]:
    """(job, earlier span, later span) for every stretch of a job's work that began before an earlier
    stretch of the same job had ended, over the three stages the dispatcher calls (flux work is part of
    the image stage's: one image request spreads its views over several flux replicas at once).

    A span that never ended (its process was SIGKILLed) ends when its process was killed.
    """
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for log in sorted(log_dir.glob("*.log")):
        open_spans: dict[tuple[str, str], float] = {}
        end_of_log = killed_at.get(log.stem, time.time())
        for match in _WORK_LINE.finditer(log.read_text(errors="replace")):
            event, job, stage, at = match.group(1), match.group(2), match.group(3), float(match.group(4))
            if stage not in DISPATCHED_STAGES:
                continue
            if event == "started":
                open_spans[(job, stage)] = at
            elif (job, stage) in open_spans:
                spans.setdefault(job, []).append((open_spans.pop((job, stage)), at, f"{log.stem}:{stage}"))
        for (job, stage), start in open_spans.items():
            spans.setdefault(job, []).append((start, end_of_log, f"{log.stem}:{stage} (killed)"))
    overlaps = []
    for job, stretches in spans.items():
        stretches.sort()
        reach, where_reach = stretches[0][1], stretches[0][2]
        for start, end, where in stretches[1:]:
            if start < reach:
                overlaps.append((job, where_reach, where))
            if end > reach:
                reach, where_reach = end, where
    return overlaps


def run_soak(jobs: int, clients: int, dispatchers: int, fault_interval: float, cancel_ratio: float,
             seed: int, data_dir: Path) -> SoakReport:  # fmt: skip
    report = SoakReport()
    soak = SoakFleet(data_dir, dispatchers)
    started = time.monotonic()
    counter = itertools.count()
    lock = threading.Lock()
    injector = FaultInjector(soak, report, fault_interval, random.Random(seed + 1))

    def next_job() -> int | None:
        """At least ``jobs`` jobs, and more until every kind of fault has been injected once."""
        with lock:
            index = next(counter)
        return index if index < jobs or not injector.cycled.is_set() else None

    try:
        injector.start()
        threads = [
            threading.Thread(
                target=client_loop,
                args=(soak.fleet.api, next_job, report, cancel_ratio, random.Random(seed + 2 + i)),
            )
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        injector.stopping.set()
        injector.join()
        report.seconds = time.monotonic() - started
        report.overlaps = find_overlaps(data_dir / "logs", soak.killed_at)
    finally:
        soak.stop()
    return report


def print_report(report: SoakReport, args: argparse.Namespace) -> None:
    states = Counter(o.state for o in report.jobs.values())
    latencies = sorted(o.ended_at - o.submitted_at for o in report.jobs.values()
                       if o.state == "completed" and o.ended_at)  # fmt: skip
    failures = Counter(o.message for o in report.jobs.values() if o.state == "failed")
    print(f"\n### Fault soak: {args.jobs} jobs, {args.clients} clients, {args.dispatchers} dispatchers, "
          f"a fault every {args.fault_interval:g} s, {report.seconds:.0f} s\n")  # fmt: skip
    print("| submitted | completed | failed | cancelled | lost | ran twice | p50 (s) | p99 (s) |")
    print("|---|---|---|---|---|---|---|---|")
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(f"| {len(report.jobs)} | {states['completed']} | {states['failed']} | {states['cancelled']} "
          f"| {states['lost']} | {len(report.overlaps)} | {p50:.2f} | {p99:.2f} |")  # fmt: skip
    print("\n| fault | times |\n|---|---|")
    for kind, count in sorted(report.faults.items()):
        print(f"| {kind} | {count} |")
    if failures:
        print("\n| failure message | jobs |\n|---|---|")
        for message, count in failures.most_common():
            print(f"| {message} | {count} |")
    for job, a, b in report.overlaps[:20]:
        print(f"ran twice: job {job}: {a} overlaps {b}")
    print(f"\nsubmissions refused and retried (Redis down): {report.submit_refusals}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--dispatchers", type=int, default=3)
    parser.add_argument("--fault-interval", type=float, default=4.0)
    parser.add_argument("--cancel-ratio", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the data folder and logs here (an empty folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshforge-soak-") as scratch:
        folder = args.keep or Path(scratch)
        report = run_soak(args.jobs, args.clients, args.dispatchers, args.fault_interval,
                          args.cancel_ratio, args.seed, folder)  # fmt: skip
    print_report(report, args)
    states = Counter(o.state for o in report.jobs.values())
    raise SystemExit(1 if states["lost"] or report.overlaps else 0)


if __name__ == "__main__":
    main()
