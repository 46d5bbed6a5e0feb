"""Start real processes for the tests: a redis-server and every meshforge service, on loopback.

Each process gets its own free port and shares one temporary data folder, exactly as the services
share models/ inputs/ outputs/ cache/ in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
import redis
from redis.asyncio import Redis as AsyncRedis

from meshforge.settings import is_settings_variable
from tests.gltf_validator import assert_valid_glb

REPO = Path(__file__).resolve().parent.parent


# Test processes take ports below the kernel's ephemeral range (32768-60999 by default): a port the
# kernel hands out could be meshforge's own default (381xx), which the README test needs free.
_TEST_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    for _ in range(1000):
        port = random.choice(_TEST_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_TEST_PORTS}")


def wait_until(check, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready within {timeout} s")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


T = TypeVar("T")


class HasRedisUrl(Protocol):
    @property
    def url(self) -> str: ...


def redis_scenario(server: HasRedisUrl, body: Callable[[AsyncRedis], Awaitable[T]]) -> T:
    """Run ``body`` with an asyncio client of the server's database, emptied first, in a fresh loop."""

    async def main() -> T:
        client = AsyncRedis.from_url(server.url, decode_responses=True)
        try:
            await client.flushdb()
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


@dataclass
class RedisServer:
    port: int
    process: Process

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, folder: Path) -> RedisServer:
        port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "redis.log"
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/bootstrap (make test does)")
        popen = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        server = cls(port, Process("redis", popen, log))
        wait_until(lambda: _redis_ping(port), 10, "redis-server")
        return server


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


@dataclass
class Fleet:
    """Every service as a real process; ``env`` is what each of them was started with."""

    data_dir: Path
    redis: RedisServer
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['MESHFORGE_ORCHESTRATOR_PORT']}"

    def start_service(self, name: str, module: str, port_var: str | None = None, **extra: str) -> Process:
        env = {**self.env, **extra}
        if port_var is not None and port_var not in env:
            env[port_var] = str(free_port())
        log = self.data_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        popen = subprocess.Popen(
            [sys.executable, "-m", module], cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        process = Process(name, popen, log)
        self.processes.append(process)
        if port_var is not None:
            url = f"http://127.0.0.1:{env[port_var]}/health"
            try:
                wait_until(lambda: httpx.get(url, timeout=2).status_code == 200, 60, name)
            except TimeoutError:
                raise RuntimeError(process.tail()) from None
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.redis.process.stop()

    def logs(self, names: Iterable[str] | None = None) -> str:
        wanted = set(names) if names else None
        return "\n".join(p.tail() for p in self.processes if wanted is None or p.name in wanted)


def start_fleet(
    data_dir: Path,
    *,
    flux_replicas: int = 2,
    reconstruction_replicas: int = 2,
    extra_env: dict[str, str] | None = None,
) -> Fleet:
    """Redis, 1 image-service, N flux-services, M reconstruction-services, 1 postprocess, the API and a
    dispatcher; returns once every one of them answers /health. ``extra_env`` (MESHFORGE_* settings,
    e.g. other backends) goes to every process."""
    redis = RedisServer.start(data_dir / "redis")
    ports = {
        "flux": [free_port() for _ in range(flux_replicas)],
        "reconstruction": [free_port() for _ in range(reconstruction_replicas)],
        "image": free_port(),
        "postprocess": free_port(),
        "orchestrator": free_port(),
    }

    def urls(port_list: list[int]) -> str:
        return ",".join(f"http://127.0.0.1:{p}" for p in port_list)

    env = {
        **{k: v for k, v in os.environ.items() if not is_settings_variable(k)},
        "MESHFORGE_DATA_DIR": str(data_dir),
        "MESHFORGE_REDIS_URL": redis.url,
        "MESHFORGE_FLUX_SERVICE_URLS": urls(ports["flux"]),
        "MESHFORGE_RECONSTRUCTION_SERVICE_URLS": urls(ports["reconstruction"]),
        "MESHFORGE_IMAGE_SERVICE_URLS": urls([ports["image"]]),
        "MESHFORGE_POSTPROCESS_SERVICE_URLS": urls([ports["postprocess"]]),
        "MESHFORGE_ORCHESTRATOR_PORT": str(ports["orchestrator"]),
        "MESHFORGE_IMAGE_SERVICE_PORT": str(ports["image"]),
        "MESHFORGE_POSTPROCESS_SERVICE_PORT": str(ports["postprocess"]),
        "MESHFORGE_LEASE_SECONDS": "3",
        "MESHFORGE_REAP_INTERVAL_SECONDS": "1",
        "MESHFORGE_REPLICA_RETRY_SECONDS": "0.05",
        "MESHFORGE_STAGE_TIMEOUT_SECONDS": "120",
        # Dispatchers serve no metrics unless a test asks (tests/test_metrics.py): the default port
        # (38150) belongs to `make run`, which the README test starts beside other fleets.
        "MESHFORGE_DISPATCHER_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    fleet = Fleet(data_dir, redis, env)
    try:
        for index, port in enumerate(ports["flux"]):
            fleet.start_service(
                f"flux-{index}",
                "flux_service",
                "MESHFORGE_FLUX_SERVICE_PORT",
                MESHFORGE_FLUX_SERVICE_PORT=str(port),
            )
        for index, port in enumerate(ports["reconstruction"]):
            fleet.start_service(
                f"reconstruction-{index}",
                "reconstruction_service",
                "MESHFORGE_RECONSTRUCTION_SERVICE_PORT",
                MESHFORGE_RECONSTRUCTION_SERVICE_PORT=str(port),
            )
        fleet.start_service("image", "image_service", "MESHFORGE_IMAGE_SERVICE_PORT")
        fleet.start_service("postprocess", "postprocess_service", "MESHFORGE_POSTPROCESS_SERVICE_PORT")
        fleet.start_service("orchestrator", "orchestrator", "MESHFORGE_ORCHESTRATOR_PORT")
        fleet.start_service("dispatcher", "orchestrator.dispatcher")
    except BaseException:
        fleet.stop()
        raise
    return fleet


def wait_for_end(api: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    """The job's status once it is completed, failed or cancelled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/3d/status/{job_id}", params={"wait": 10}).json()
        if status["state"] in ("completed", "failed", "cancelled"):
            return status
    raise TimeoutError(f"job {job_id} still {status['state']} after {timeout} s")


def download(api: httpx.Client, job_id: str, folder: Path) -> Path:
    response = api.get(f"/3d/download/{job_id}")
    assert response.status_code == 200, response.text
    name = response.headers["content-disposition"].split("filename=")[-1].strip('"')
    path = folder / name
    path.write_bytes(response.content)
    if path.suffix == ".glb":  # every GLB the stack hands out must pass the Khronos validator
        assert_valid_glb(path)
    return path


# --- Extra orchestrators for reliability tests ----------------------------------------------------
# A Stack is an orchestrator API plus dispatchers of its own, on their own Redis database of the
# fleet's server, driving the fleet's stage services: its jobs never meet the fleet's dispatcher.

_stack_serial = 0


def _next_serial() -> int:
    global _stack_serial
    _stack_serial += 1
    return _stack_serial


@dataclass
class DispatcherProcess:
    """A running `python -m orchestrator.dispatcher` and the worker id it registered in Redis."""

    process: Process
    worker_id: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        self.process.stop(sig, timeout)


@dataclass
class Stack:
    fleet: Fleet
    name: str
    env: dict[str, str]
    """Variables overriding the fleet's environment for this stack's processes."""
    processes: list[Process] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['MESHFORGE_ORCHESTRATOR_PORT']}"

    @property
    def redis_url(self) -> str:
        return self.env["MESHFORGE_REDIS_URL"]

    def redis_client(self) -> redis.Redis:
        """A synchronous client of this stack's database, decoding answers to str."""
        return redis.Redis.from_url(self.redis_url, decode_responses=True)

    def _start(self, role: str, module: str, port_var: str | None, extra: dict[str, str]) -> Process:
        name = f"{self.name}-{role}-{_next_serial()}"
        process = self.fleet.start_service(name, module, port_var, **{**self.env, **extra})
        self.processes.append(process)
        return process

    def start_api(self) -> Process:
        return self._start("orchestrator", "orchestrator", "MESHFORGE_ORCHESTRATOR_PORT", {})

    def start_dispatcher(self, timeout: float = 30, **extra: str) -> DispatcherProcess:
        """Start a dispatcher; returns once it has registered (lease taken, ready to take jobs)."""
        process = self._start("dispatcher", "orchestrator.dispatcher", None, extra)
        pid = str(process.popen.pid)
        found: list[str] = []

        def registered() -> bool:
            if process.popen.poll() is not None:
                raise RuntimeError(f"dispatcher exited with {process.popen.returncode}\n{process.tail()}")
            with self.redis_client() as client:
                for worker in client.smembers("3d:workers"):
                    if worker.rsplit("-", 2)[-2:-1] == [pid] and client.exists(f"3d:worker:{worker}"):
                        found.append(worker)
                        return True
            return False

        deadline = time.monotonic() + timeout
        while not registered():
            if time.monotonic() > deadline:
                process.stop(signal.SIGKILL)
                raise TimeoutError(f"dispatcher did not register within {timeout} s\n{process.tail()}")
            time.sleep(0.05)
        return DispatcherProcess(process, found[0])

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
            if process in self.fleet.processes:
                self.fleet.processes.remove(process)
        self.processes.clear()

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)


def start_stack(fleet: Fleet, name: str, db: int, *, api: bool = True, **extra: str) -> Stack:
    """An orchestrator on Redis database ``db`` (emptied first) of the fleet's server; ``extra`` overrides
    MESHFORGE_* settings for the stack's processes. Start dispatchers with ``Stack.start_dispatcher``."""
    env = {
        "MESHFORGE_REDIS_URL": f"redis://127.0.0.1:{fleet.redis.port}/{db}",
        "MESHFORGE_ORCHESTRATOR_PORT": str(free_port()),
        **extra,
    }
    stack = Stack(fleet, name, env)
    with stack.redis_client() as client:
        client.flushdb()
    if api:
        try:
            stack.start_api()
        except BaseException:
            stack.stop()
            raise
    return stack


@contextlib.contextmanager
def running_stack(fleet: Fleet, name: str, db: int, **extra: str) -> Iterator[Stack]:
    """``start_stack`` with one dispatcher running, stopped (dispatcher and API) on leaving."""
    stack = start_stack(fleet, name, db, **extra)
    try:
        stack.start_dispatcher()
        yield stack
    finally:
        stack.stop()


def wait_for_state(api: httpx.Client, job_id: str, states: set[str], timeout: float = 60) -> dict:
    """The job's status as soon as it is in one of ``states``; fails at once if it ends elsewhere."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = api.get(f"/3d/status/{job_id}").json()
        if status["state"] in states:
            return status
        if status["state"] in ("completed", "failed", "cancelled"):
            raise AssertionError(f"job {job_id} ended {status['state']} before reaching {states}: {status}")
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} still {status.get('state')} after {timeout} s, never in {states}")
