"""What the throughput benchmarks share: a fleet of real processes with benchmark stage backends,
Redis and CPU counters, and Markdown output (their API clients: benchmarks/api_clients.py).

Every process is started by ``benchmarks.stage_process`` (the service's own ``__main__``, with the
benchmark backends registered), as real processes on loopback beside a real Redis (tests/fleet.py).
Settings are production defaults except the ones named in ``base_env`` and by each benchmark.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from meshforge.settings import is_settings_variable
from tests.fleet import REPO, Fleet, Process, RedisServer, free_port

# One 32² view per job and the smallest sizes each stage accepts: the benchmarks time the fleet,
# not image sizes (the sleeping backends stand in for the GPU time).
TINY_TIER = {"views": 1, "image_size": 32, "voxel_resolution": 16, "target_faces": 100, "texture_size": 64}
STARTUP_SECONDS = 120.0  # 2 cores, a dozen Python processes importing at once


def base_env(data_dir: Path, redis_url: str, backend: str) -> dict[str, str]:
    """What every process of a benchmark fleet gets, besides replica URLs and ports."""
    return {
        **{k: v for k, v in os.environ.items() if not is_settings_variable(k)},
        "MESHFORGE_DATA_DIR": str(data_dir),
        "MESHFORGE_REDIS_URL": redis_url,
        "MESHFORGE_FLUX_BACKEND": backend,
        "MESHFORGE_RECONSTRUCTION_BACKEND": backend,
        "MESHFORGE_POSTPROCESS_BACKEND": backend,
        "MESHFORGE_TIERS": json.dumps({"standard": TINY_TIER, "high": TINY_TIER}),
        "MESHFORGE_MAX_QUEUED_JOBS": "0",  # backlogs of 10,000 jobs: no queue cap
        # The default metrics port (38150) may belong to a `make run` on this machine.
        "MESHFORGE_DISPATCHER_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass(frozen=True)
class StageSeconds:
    """The sleeping backends' pause per call (0: instant)."""

    images: float = 0.0
    reconstruction: float = 0.0
    postprocess: float = 0.0


@dataclass(frozen=True)
class Stages:
    """The stage replicas' URLs."""

    flux: list[str]
    reconstruction: list[str]
    postprocess: str

    def env(
        self, image_url: str, flux: int | None = None, reconstruction: int | None = None
    ) -> dict[str, str]:
        """The replica URLs a dispatcher (or the orchestrator) is given: the first ``flux`` and
        ``reconstruction`` replicas (default: all)."""
        return {
            "MESHFORGE_IMAGE_SERVICE_URLS": image_url,
            "MESHFORGE_FLUX_SERVICE_URLS": ",".join(self.flux[:flux]),
            "MESHFORGE_RECONSTRUCTION_SERVICE_URLS": ",".join(self.reconstruction[:reconstruction]),
            "MESHFORGE_POSTPROCESS_SERVICE_URLS": self.postprocess,
        }

    @property
    def all(self) -> list[str]:
        return [*self.flux, *self.reconstruction, self.postprocess]


@dataclass
class BenchFleet:
    """A Redis and fleet processes, each started through benchmarks.stage_process."""

    fleet: Fleet
    profile_dir: Path | None = None
    _serial: int = 0

    @classmethod
    def start_redis(cls, data_dir: Path, backend: str, profile_dir: Path | None = None) -> BenchFleet:
        server = RedisServer.start(data_dir / "redis")
        return cls(Fleet(data_dir, server, base_env(data_dir, server.url, backend)), profile_dir)

    @property
    def redis_url(self) -> str:
        return self.fleet.redis.url

    def spawn(self, process: str, name: str, env: dict[str, str], seconds: float = 0.0) -> Process:
        """Start ``process`` (a stage_process name) without waiting for it; ``env`` overrides the fleet's."""
        argv = [sys.executable, "-m", "benchmarks.stage_process", process]
        if seconds:
            argv += ["--seconds", str(seconds)]
        if self.profile_dir is not None:
            self._serial += 1
            argv += ["--profile", str(self.profile_dir / f"{self._serial:02d}-{name}.prof")]
        log = self.fleet.data_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        popen = subprocess.Popen(
            argv, cwd=REPO, env={**self.fleet.env, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        started = Process(name, popen, log)
        self.fleet.processes.append(started)
        return started

    def service(
        self, process: str, name: str, port_var: str, env: dict[str, str], seconds: float = 0.0
    ) -> str:
        """Start an HTTP service on a fresh port; returns its base URL (not yet waited for)."""
        port = free_port()
        self.spawn(process, name, {**env, port_var: str(port)}, seconds)
        return f"http://127.0.0.1:{port}"

    def start_stages(self, flux: int, reconstruction: int, seconds: StageSeconds) -> Stages:
        """flux-service and reconstruction-service replicas and one postprocess-service, not yet waited
        for; image-service, which names the flux replicas it uses, is started by ``start_images``."""
        return Stages(
            [
                self.service("flux-service", f"flux-{i}", "MESHFORGE_FLUX_SERVICE_PORT", {}, seconds.images)
                for i in range(flux)
            ],
            [
                self.service(
                    "reconstruction-service",
                    f"reconstruction-{i}",
                    "MESHFORGE_RECONSTRUCTION_SERVICE_PORT",
                    {},
                    seconds.reconstruction,
                )
                for i in range(reconstruction)
            ],
            self.service(
                "postprocess-service",
                "postprocess",
                "MESHFORGE_POSTPROCESS_SERVICE_PORT",
                {},
                seconds.postprocess,
            ),
        )

    def start_images(self, name: str, flux_urls: Sequence[str]) -> str:
        """An image-service drawing with ``flux_urls``; returns its URL (not yet waited for)."""
        env = {"MESHFORGE_FLUX_SERVICE_URLS": ",".join(flux_urls)}
        return self.service("image-service", name, "MESHFORGE_IMAGE_SERVICE_PORT", env)

    def start_api(self, stages: Stages, image_url: str) -> str:
        """The orchestrator (public API); returns its URL (not yet waited for)."""
        return self.service(
            "orchestrator", "orchestrator", "MESHFORGE_ORCHESTRATOR_PORT", stages.env(image_url)
        )

    def wait_healthy(self, bases: Sequence[str]) -> None:
        """Wait until every URL answers /health, failing with the log of any process that exited."""
        pending = list(bases)
        deadline = time.monotonic() + STARTUP_SECONDS
        while pending:
            _check_running(self.fleet.processes)
            pending = [base for base in pending if not _answers(base)]
            if time.monotonic() > deadline:
                raise TimeoutError(f"not healthy within {STARTUP_SECONDS:.0f} s: {pending}")
            time.sleep(0.1)

    def start_dispatcher(self, name: str, env: dict[str, str]) -> Process:
        """Start a dispatcher; returns once it has registered in Redis (it then takes jobs)."""
        process = self.spawn("dispatcher", name, env)
        marker = f"-{process.popen.pid}-"  # worker ids are <host>-<pid>-<random>
        deadline = time.monotonic() + STARTUP_SECONDS
        with redis.Redis.from_url(self.redis_url, decode_responses=True) as client:
            while not any(marker in worker for worker in client.smembers("3d:workers")):
                _check_running([process])
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not register within {STARTUP_SECONDS:.0f} s")
                time.sleep(0.05)
        return process

    def process(self, name: str) -> Process:
        return next(process for process in self.fleet.processes if process.name == name)

    def stop(self, process: Process) -> None:
        process.stop(timeout=30)
        self.fleet.processes.remove(process)

    def stop_all(self) -> None:
        self.fleet.stop()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each running process has used so far, by name; Redis as "redis"."""
        running = [*self.fleet.processes, self.fleet.redis.process]
        return {p.name: process_cpu_seconds(p.popen.pid) for p in running if p.popen.poll() is None}


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProcessExited(RuntimeError):
    """A fleet process stopped while the benchmark needed it."""


def _check_running(processes: Iterable[Process]) -> None:
    for process in processes:
        if process.popen.poll() is not None:
            raise ProcessExited(f"{process.name} exited with {process.popen.returncode}\n{process.tail()}")


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# --- Redis counters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisCounters:
    """Redis's own counts. ``commands`` includes those run inside Lua scripts (Redis counts them, by
    name, in commandstats too); ``reads`` (read events on client sockets) is the round trips: one per
    command sent alone, one per pipeline or MULTI block, one per script call."""

    commands: int
    reads: int
    by_command: dict[str, int]

    @classmethod
    def read(cls, url: str) -> RedisCounters:
        with redis.Redis.from_url(url, decode_responses=True) as client:
            stats = client.info("stats")
            by_command = {
                name.removeprefix("cmdstat_"): int(value["calls"])
                for name, value in client.info("commandstats").items()
            }
        return cls(int(stats["total_commands_processed"]), int(stats["total_reads_processed"]), by_command)

    def since(self, before: RedisCounters) -> RedisCounters:
        names = set(self.by_command) | set(before.by_command)
        by_command = {n: self.by_command.get(n, 0) - before.by_command.get(n, 0) for n in names}
        return RedisCounters(
            self.commands - before.commands,
            self.reads - before.reads,
            {name: calls for name, calls in by_command.items() if calls},
        )


# --- Figures and Markdown --------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` 0.5 is the median, 0.99 the p99)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(load average {load} at the end), Python {platform.python_version()}"
    )


def busy_answers(bases: Iterable[str]) -> int:
    """503 answers (a replica busy with another job) the services at ``bases`` gave, from their /metrics."""
    total = 0
    for base in bases:
        text = httpx.get(f"{base}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("meshforge_http_requests_total{") and 'status="503"' in line:
                total += int(float(line.rsplit(" ", 1)[1]))
    return total
