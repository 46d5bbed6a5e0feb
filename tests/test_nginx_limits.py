"""The nginx site's limits, run by a real nginx in front of a recording upstream on loopback.

Each test starts its own nginx (fresh rate-limit zones) from the committed site, rendered as in
tests/test_nginx.py, in front of a small HTTP server that answers every request with 200 and records
what reached it: whether nginx refused a request itself, and which headers it passed on. The commented
HTTPS block is uncommented, given a throwaway self-signed certificate, and served too.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.fleet import free_port
from tests.test_nginx import HOST, NGINX, Nginx, main_conf, render_site, running

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (scripts/bootstrap)")

JOB = "0123456789abcdef0123456789abcdef"


@dataclass
class Upstream:
    """What reached the stand-in orchestrator: (method, path, headers) per request."""

    port: int
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def paths(self, method: str) -> list[str]:
        return [path for seen_method, path, _ in self.seen if seen_method == method]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    recorded = Upstream(free_port())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as nginx talks to the orchestrator

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received = self.rfile.read(length) if length else b""
            recorded.seen.append((self.command, self.path, dict(self.headers.items())))
            body = json.dumps({"status": "ok", "received": len(received)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", recorded.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorded
    server.shutdown()
    server.server_close()


def write_nginx(prefix: Path, site_text: str, port: int) -> Nginx:
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / HOST
    site.write_text(site_text)
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix, site))
    return Nginx(prefix, conf, f"http://127.0.0.1:{port}")


@pytest.fixture
def nginx(upstream: Upstream, tmp_path: Path) -> Iterator[Nginx]:
    port = free_port()
    site = render_site(port, upstream.port, f"127.0.0.1:{free_port()}")
    with running(write_nginx(tmp_path / "nginx", site, port)) as server:
        upstream.seen.clear()  # the readiness probe
        yield server


def burst(nginx: Nginx, path: str, count: int, workers: int) -> tuple[list[httpx.Response], float]:
    """``count`` GETs of ``path`` from ``workers`` threads at once; the answers and the seconds taken."""
    started = time.monotonic()
    with nginx.client() as client, ThreadPoolExecutor(workers) as pool:
        responses = list(pool.map(lambda _: client.get(path), range(count)))
    return responses, time.monotonic() - started


def test_a_burst_over_the_limit_gets_429_in_the_api_error_shape(nginx: Nginx, upstream: Upstream) -> None:
    responses, seconds = burst(nginx, f"/3d/status/{JOB}", count=200, workers=16)
    refused = [r for r in responses if r.status_code == 429]
    served = [r for r in responses if r.status_code == 200]
    assert len(refused) + len(served) == len(responses)
    # 10 r/s with a burst of 40: the burst is served at once, then 10 a second; the rest is refused.
    assert 40 <= len(served) <= 41 + 10 * seconds + 1, (len(served), seconds)
    assert refused, f"200 requests in {seconds:.1f} s were all served"
    assert len(upstream.paths("GET")) == len(served)  # refused requests never reached the orchestrator
    answer = refused[0].json()
    assert answer["code"] == "rate_limited" and "retry" in answer["detail"].lower()
    assert refused[0].headers["content-type"] == "application/json"
    assert refused[0].headers["retry-after"] == "1"


def test_the_ui_polling_pace_is_never_refused(nginx: Nginx) -> None:
    # A page load (about 5 files and the first calls at once), then polls 5 times faster than the
    # UI's once a second while a job runs.
    first, _ = burst(nginx, "/3d/jobs?limit=20", count=10, workers=10)
    assert all(r.status_code == 200 for r in first)
    with nginx.client() as client:
        for _ in range(12):
            assert client.get("/3d/jobs", params={"limit": 20}).status_code == 200
            assert client.get(f"/3d/status/{JOB}").status_code == 200
            time.sleep(0.4)


def test_writes_have_their_own_tighter_limit(nginx: Nginx, upstream: Upstream) -> None:
    with nginx.client() as client:
        codes = [client.post(f"/3d/cancel/{JOB}").status_code for _ in range(20)]
        # Reads are counted apart: they still pass while writes are refused.
        assert client.get(f"/3d/status/{JOB}").status_code == 200
    # 30 a minute with a burst of 10: the first 11 pass, the rest within the same second do not.
    assert codes[:11] == [200] * 11 and set(codes[11:]) == {429}, codes
    assert len(upstream.paths("POST")) == 11


def test_a_json_body_over_64_kib_gets_413_before_the_orchestrator(nginx: Nginx, upstream: Upstream) -> None:
    with nginx.client() as client:
        small = client.post("/3d/generate", json={"prompt": "a" * 60_000})
        large = client.post("/3d/generate", json={"prompt": "a" * 70_000})
    assert small.status_code == 200 and small.json()["received"] > 60_000
    assert large.status_code == 413
    assert large.json()["code"] == "payload_too_large" and "64 KiB" in large.json()["detail"]
    assert upstream.paths("POST") == ["/3d/generate"]  # only the small one


def test_an_upload_of_a_few_mib_passes_and_one_over_170_mib_is_refused(
    nginx: Nginx, upstream: Upstream
) -> None:
    image = bytes(range(256)) * (12 * 1024)  # 3 MiB
    with nginx.client() as client:
        uploaded = client.post("/3d/upload", files=[("files", ("front.png", image, "image/png"))])
    assert uploaded.status_code == 200 and uploaded.json()["received"] > len(image)
    # A declared length over the limit is refused from the headers alone: no body needs to be sent.
    port = int(nginx.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"POST /3d/upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {171 * 1024 * 1024}\r\n\r\n".encode()
        )
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", status_line
    assert upstream.paths("POST") == ["/3d/upload"]


def test_the_version_is_hidden_and_every_request_gets_an_id(nginx: Nginx, upstream: Upstream) -> None:
    with nginx.client() as client:
        for _ in range(2):
            response = client.get("/health")
            assert response.headers["server"] == "nginx"
    ids = [headers.get("X-Request-ID", "") for _, _, headers in upstream.seen]
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1], ids


# --- the commented HTTPS block ----------------------------------------------------------------------


def uncomment_tls_block(text: str) -> str:
    """The site with its commented-out `server { ... }` block for port 443 made live."""
    lines = text.splitlines(keepends=True)
    start = lines.index("# server {\n")
    end = lines.index("# }\n", start)
    live = [line.removeprefix("#").removeprefix(" ") for line in lines[start : end + 1]]
    return "".join(lines[:start] + live + lines[end + 1 :])


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", f"/CN={HOST}"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_commented_https_block_serves_tls_1_2_and_1_3_with_hsts(
    upstream: Upstream, tmp_path: Path
) -> None:
    port, tls_port = free_port(), free_port()
    cert, key = self_signed(tmp_path)
    live = "/etc/letsencrypt/live/" + HOST
    site = (
        uncomment_tls_block(render_site(port, upstream.port, f"127.0.0.1:{free_port()}"))
        .replace("    listen 443 ssl http2;\n", f"    listen 127.0.0.1:{tls_port} ssl http2;\n")
        .replace("    listen [::]:443 ssl http2;\n", f"    listen 127.0.0.1:{free_port()} ssl http2;\n")
        .replace(f"{live}/fullchain.pem", str(cert))
        .replace(f"{live}/privkey.pem", str(key))
    )
    server = write_nginx(tmp_path / "nginx", site, port)
    checked = subprocess.run(server.command("-t"), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    with running(server), httpx.Client(verify=False, timeout=10) as client:  # self-signed
        response = client.get(f"https://127.0.0.1:{tls_port}/health", headers={"Host": HOST})
        assert response.status_code == 200
        assert response.headers["strict-transport-security"] == "max-age=63072000"
        assert response.headers["server"] == "nginx"
        assert response.extensions["network_stream"].get_extra_info("ssl_object").version() in (
            "TLSv1.2",
            "TLSv1.3",
        )
