"""A loopback HTTP proxy in front of a real orchestrator that injects the faults a client must survive:
an answer lost after the server acted on the request, a busy 503, an event stream cut mid-way, a
server without GET /3d/events (an older one), a download cut short. Everything else passes through
unchanged, and every request is recorded, so a test can see exactly what the client sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

# Not passed on: hop-by-hop headers, and the ones the proxy sets itself for the body it sends.
_SKIPPED = {"host", "connection", "content-length", "transfer-encoding", "content-encoding", "keep-alive"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Faults:
    """What to break; the counters count down as the faults are used."""

    lost_answers: dict[str, int] = field(default_factory=dict)  # "POST /3d/generate" → times
    busy: dict[str, int] = field(default_factory=dict)  # "POST /3d/generate" → times, 503 Retry-After: 0
    cut_events_after: int | None = None  # the first event stream hangs up after this many events
    no_events_endpoint: bool = False
    cut_downloads: int = 0


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults = Faults()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests(self, method: str, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.startswith(prefix)]

    def take(self, table: dict[str, int], key: str) -> bool:
        """Uses up one fault of ``table`` for ``key`` if one is left."""
        with self._lock:
            if table.get(key, 0) > 0:
                table[key] -= 1
                return True
            return False

    def take_cut(self) -> int | None:
        with self._lock:
            after, self.faults.cut_events_after = self.faults.cut_events_after, None
            return after

    def take_download_cut(self) -> bool:
        with self._lock:
            cut = self.faults.cut_downloads > 0
            self.faults.cut_downloads -= int(cut)
            return cut

    @contextmanager
    def running(self) -> Iterator[FaultProxy]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(10)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIPPED}
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            proxy.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
            route = f"{self.command} {self.path.split('?')[0]}"
            faults = proxy.faults
            if proxy.take(faults.busy, route):
                return self._answer(503, b'{"detail":"busy (injected)","code":"busy"}', {"Retry-After": "0"})
            if self.path.startswith("/3d/events/"):
                if faults.no_events_endpoint:
                    return self._answer(404, b'{"detail":"Not Found","code":"http_error"}')
                return self._events(headers, proxy.take_cut())
            with httpx.Client(base_url=proxy.upstream, timeout=150) as client:
                answer = client.request(self.command, self.path, headers=headers, content=body)
            if proxy.take(faults.lost_answers, route):
                self.close_connection = True  # the server acted; its answer never reaches the client
                return None
            passed = {k: v for k, v in answer.headers.items() if k.lower() not in _SKIPPED}
            if (
                self.path.startswith("/3d/download/")
                and answer.status_code == 200
                and proxy.take_download_cut()
            ):
                return self._answer(
                    200, answer.content[: len(answer.content) // 2], passed, len(answer.content)
                )
            return self._answer(answer.status_code, answer.content, passed)

        def _answer(
            self, status: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def _events(self, headers: dict[str, str], cut_after: int | None) -> None:
            """The stream passed on line by line; with ``cut_after``, hung up after that many events."""
            with (
                httpx.Client(base_url=proxy.upstream, timeout=60) as client,
                client.stream("GET", self.path, headers=headers) as answer,
            ):
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
                self.send_header("Connection", "close")
                self.end_headers()
                events = 0
                for line in answer.iter_lines():
                    self.wfile.write(line.encode() + b"\n")
                    self.wfile.flush()
                    if line == "":
                        events += 1
                        if cut_after is not None and events >= cut_after:
                            break
            self.close_connection = True

    return Handler
