"""What tests/test_queue_faults.py drives: a redis-server with its append-only file (so it can be
restarted mid-test and keep its data), a fake stage service that counts its calls, and dispatchers
both in this process (to inject a fault at one exact call) and as real processes (to SIGKILL them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel, ValidationError

from meshforge.service import describe_validation_errors
from meshforge.settings import DispatcherSettings, is_settings_variable
from meshforge.stage_schemas import (
    ImagineFromPathsRequest,
    ImagineFromUrlsRequest,
    ImagineGenerateRequest,
    PostprocessRequest,
    ReconstructRequest,
)
from orchestrator.dispatcher import Dispatcher, build_pools
from orchestrator.jobs import TERMINAL, JobStore
from tests.fleet import REPO, free_port, wait_until

AOF_EVERY_WRITE = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
REQUEST = {"prompt": "a red cube", "output_format": "glb", "quality_tier": "standard", "seed": 1}


@dataclass
class AofRedis:
    """A redis-server that fsyncs every write to its append-only file, so a restart loses nothing."""

    folder: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> AofRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/bootstrap (make test does)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("a")
        self.popen = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                *AOF_EVERY_WRITE,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: redis.Redis(port=self.port).ping(), 10, "redis-server")
        return self

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


@dataclass
class Call:
    path: str
    job_id: str
    at: float
    body: dict[str, Any] = field(default_factory=dict)


HANG_UP = (0, {})
"""A reply that closes the connection without answering (the caller sees RemoteProtocolError)."""

Reply = tuple[int, dict[str, Any]]

# Each stage route: the request model the real service validates, and the shared folder its output
# must lie in (the dispatcher decides the paths; the services require them and check the folder).
ROUTES: dict[str, tuple[type[BaseModel], str]] = {
    "/imagine/generate": (ImagineGenerateRequest, "inputs"),
    "/imagine/from-urls": (ImagineFromUrlsRequest, "inputs"),
    "/imagine/from-paths": (ImagineFromPathsRequest, "inputs"),
    "/reconstruct/mesh": (ReconstructRequest, "cache"),
    "/postprocess/clean": (PostprocessRequest, "outputs"),
}


class FakeStage:
    """One HTTP server on loopback answering every stage path (images, reconstruction, post-processing)
    with a valid result, recording each call. ``behave(call)`` may answer instead: a (status, body)
    pair, HANG_UP, or None for the normal answer; it may also block (it runs in the request's thread).

    Like the real services it validates each request with the stage's schema and refuses (422) an
    output path outside the stage's folder of ``data_dir``; its results are the paths it was sent.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.calls: list[Call] = []
        self.behave: Callable[[Call], Reply | None] = lambda call: None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls_to(self, prefix: str, job_id: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.startswith(prefix) and job_id in (None, c.job_id)]

    def answer(self, path: str, body: dict[str, Any]) -> Reply:
        if path not in ROUTES:
            return 404, {"detail": f"no route {path}", "code": "not_found"}
        model, folder = ROUTES[path]
        try:
            request: Any = model.model_validate(body)
        except ValidationError as exc:
            return 422, {"detail": describe_validation_errors(list(exc.errors())), "code": "invalid_request"}
        output = Path(request.output_dir if path.startswith("/imagine/") else request.output_path)
        preview = getattr(request, "preview_path", None)
        for written in [output] + ([Path(preview)] if preview else []):
            if self.data_dir / folder not in written.parents:
                return 422, {"detail": f'"{written}" is outside {folder}/', "code": "invalid_input"}
        if path.startswith("/imagine/"):
            views = {"image_paths": [str(output / "views" / "00-front.png")], "views": ["front"]}
            return 200, views | {"backend": "fake", "seconds": 0.0}
        if path.startswith("/reconstruct/"):
            mesh = {"mesh_path": str(output.with_suffix(f".{request.output_format}"))}
        else:
            mesh = {"asset_path": str(output), "preview_path": request.preview_path}
        return 200, mesh | {"backend": "fake", "vertices": 8, "faces": 12, "seconds": 0.0}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"status": "ok"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                call = Call(self.path, str(body.get("job_id") or ""), time.time(), body)
                with stage._lock:
                    stage.calls.append(call)
                reply = stage.behave(call)
                if reply is HANG_UP:
                    self.close_connection = True
                    return
                self._send(*(reply or stage.answer(self.path, body)))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def stage_env(server: AofRedis, stage: FakeStage, data_dir: Path, **extra: str) -> dict[str, str]:
    """MESHFORGE_* settings of a dispatcher using ``server`` and the fake stage for every stage."""
    return {
        "MESHFORGE_DATA_DIR": str(data_dir),
        "MESHFORGE_REDIS_URL": server.url,
        "MESHFORGE_IMAGE_SERVICE_URLS": stage.url,
        "MESHFORGE_RECONSTRUCTION_SERVICE_URLS": stage.url,
        "MESHFORGE_POSTPROCESS_SERVICE_URLS": stage.url,
        "MESHFORGE_LEASE_SECONDS": "1",
        "MESHFORGE_REAP_INTERVAL_SECONDS": "0.3",
        "MESHFORGE_REPLICA_RETRY_SECONDS": "0.05",
        "MESHFORGE_STAGE_TIMEOUT_SECONDS": "5",
        "MESHFORGE_DISPATCHER_CONCURRENCY": "1",
        **extra,
    }


def settings_of(env: dict[str, str]) -> DispatcherSettings:
    return DispatcherSettings(**{key.removeprefix("MESHFORGE_").lower(): value for key, value in env.items()})


def start_dispatcher_process(env: dict[str, str], log: Path) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.dispatcher"],
        cwd=REPO,
        env={**clean, "PYTHONUNBUFFERED": "1", **env},
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def stop_process(popen: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if popen.poll() is None:
        popen.send_signal(sig)
        popen.wait(10)


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    """Run an in-process dispatcher for the block, then stop it cleanly."""
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 15)


def in_process(redis_client: Any, env: dict[str, str], worker_id: str) -> Dispatcher:
    settings = settings_of(env)
    return Dispatcher(settings, redis_client, build_pools(settings), worker_id=worker_id)


async def wait_for_end(store: JobStore, job_id: str, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        record = await store.raw(job_id)
        if record["state"] in TERMINAL:
            return record
        assert time.monotonic() < deadline, f"job {job_id} still {record['state']}: {record['message']}"
        await asyncio.sleep(0.05)


def wait_for_end_sync(server: AofRedis, job_id: str, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    record: dict[str, str] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.ConnectionError), server.client() as client:
            record = client.hgetall(f"job:{job_id}")
            if record.get("state") in TERMINAL:
                return record
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ended: {record}")
