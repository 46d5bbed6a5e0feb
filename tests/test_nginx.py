"""The nginx site nginx/elohim-bitch-gpu.insanelabs.org, run by a real nginx in front of the fleet.

The site is rendered for the test with only its ports changed (listen 80 → a free loopback port,
upstream 38100 → the fleet's orchestrator), and served by an nginx of our own under a temporary prefix:
nothing here needs port 80, root's nginx, or touches the system's nginx.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from meshforge.internal_token import internal_headers
from tests.fleet import Fleet, free_port, wait_until
from tests.ui import serve_ui

# nginx lives in /usr/sbin, which is not on a non-root user's PATH on Debian.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")

pytestmark = [
    pytest.mark.fleet,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (scripts/bootstrap)"),
]

REPO = Path(__file__).resolve().parent.parent
HOST = "elohim-bitch-gpu.insanelabs.org"
SITE = REPO / "nginx" / HOST
INSTALL = REPO / "scripts" / "install-host"
UI_PORT = 38101


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def ipv6_listen(port: int) -> str:
    """Where the site's IPv6 listen goes: [::1], or a second IPv4 port on hosts without IPv6."""
    return f"[::1]:{port}" if ipv6_loopback() else f"127.0.0.1:{free_port()}"


def render_site(
    listen_port: int, api_port: int, ipv6: str, ui_port: int = UI_PORT, text: str | None = None
) -> str:
    """The committed site (or ``text``, a site install-host wrote) with its listen and upstream ports
    swapped, and nothing else."""
    return (
        (SITE.read_text() if text is None else text)
        .replace("    listen 80;\n", f"    listen 127.0.0.1:{listen_port};\n", 1)
        .replace("    listen [::]:80;\n", f"    listen {ipv6};\n", 1)
        .replace("proxy_pass http://127.0.0.1:38100;", f"proxy_pass http://127.0.0.1:{api_port};")
        .replace("proxy_pass http://127.0.0.1:38101;", f"proxy_pass http://127.0.0.1:{ui_port};")
    )


def main_conf(prefix: Path, site: Path) -> str:
    """A minimal main config like Debian's /etc/nginx/nginx.conf, with every path inside ``prefix``."""
    # As root, nginx would run its workers as nobody, who cannot enter pytest's private tmp folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format upstream '$request_uri $status $upstream_addr';
    access_log {prefix}/access.log upstream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


@dataclass
class Nginx:
    prefix: Path
    conf: Path
    url: str

    def command(self, *args: str) -> list[str]:
        # -e: the error log to use before the config is read (the compiled-in one is /var/log/nginx).
        return [
            str(NGINX),
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
            "-c",
            str(self.conf),
            *args,
        ]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Host": HOST}, timeout=90)

    def log(self, name: str) -> str:
        path = self.prefix / name
        return path.read_text() if path.exists() else ""


def setup_nginx(prefix: Path, api_port: int, ui_port: int = UI_PORT, text: str | None = None) -> Nginx:
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = prefix / HOST
    site.write_text(render_site(port, api_port, ipv6_listen(port), ui_port, text))
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix, site))
    return Nginx(prefix, conf, f"http://127.0.0.1:{port}")


def orchestrator_port(fleet: Fleet) -> int:
    return int(fleet.env["MESHFORGE_ORCHESTRATOR_PORT"])


@contextmanager
def running(server: Nginx, ready_path: str = "/health") -> Iterator[Nginx]:
    """``server`` as a running nginx, once ``ready_path`` answers 200 through it."""
    process = subprocess.Popen(
        server.command("-g", "daemon off;"), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}\n{server.log('error.log')}")
        return httpx.get(server.url + ready_path, headers={"Host": HOST}, timeout=2).status_code == 200

    try:
        wait_until(answers, 30, "nginx")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def nginx(fleet: Fleet, ui_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    ui_port = int(ui_url.rsplit(":", 1)[1])
    server = setup_nginx(tmp_path_factory.mktemp("nginx"), orchestrator_port(fleet), ui_port)
    with running(server) as started:
        yield started


def test_rendered_site_differs_only_in_ports() -> None:
    committed = SITE.read_text().splitlines(keepends=True)
    rendered = render_site(45678, 45679, "[::1]:45678", 45680).splitlines(keepends=True)
    assert len(rendered) == len(committed)
    changed = {(old, new) for old, new in zip(committed, rendered, strict=True) if old != new}
    upstream = "proxy_pass http://127.0.0.1:38100;\n"
    ui_upstream = "proxy_pass http://127.0.0.1:38101;\n"
    assert changed == {
        ("    listen 80;\n", "    listen 127.0.0.1:45678;\n"),
        ("    listen [::]:80;\n", "    listen [::1]:45678;\n"),
        ("        " + upstream, "        " + upstream.replace("38100", "45679")),
        # The same line in the commented-out 443 block: harmless, it is a comment.
        ("#         " + upstream, "#         " + upstream.replace("38100", "45679")),
        ("        " + ui_upstream, "        " + ui_upstream.replace("38101", "45680")),
        ("#         " + ui_upstream, "#         " + ui_upstream.replace("38101", "45680")),
    }


def nginx_test(server: Nginx) -> None:
    result = subprocess.run(server.command("-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "warn" not in result.stderr, result.stderr


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx_test(setup_nginx(tmp_path, 45679))


def test_health_through_nginx(nginx: Nginx, fleet: Fleet) -> None:
    with nginx.client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json(), dict)
    assert f"/health 200 127.0.0.1:{orchestrator_port(fleet)}" in nginx.log("access.log")


def raw_get(server: Nginx, path: str, token: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation): the status and the body."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    headers = "".join(f"{name}: {value}\r\n" for name, value in internal_headers(token).items())
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{headers}Connection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode("ascii"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_the_orchestrators_metrics_are_not_served_through_nginx(nginx: Nginx, fleet: Fleet) -> None:
    # The orchestrator serves them, to a fleet caller (Prometheus scrapes the container itself) ...
    token = fleet.env.get("MESHFORGE_INTERNAL_TOKEN", "")
    direct = httpx.get(f"{fleet.api}/metrics", headers=internal_headers(token), timeout=10)
    assert direct.status_code == 200 and "meshforge_" in direct.text
    # ... and nginx answers them as an unknown path, spelt any way it normalises to /metrics, without
    # passing the request on (no upstream in its log); everything else still goes through. Sent as
    # raw request lines: an HTTP client would normalise some of these paths itself.
    hidden = ("/metrics", "/metrics?format=text", "/%6Detrics", "//metrics", "/3d/../metrics")
    for path in hidden:
        status, body = raw_get(nginx, path, token)
        assert status == 404, path
        assert json.loads(body) == {"detail": "Not Found", "code": "http_error"}, path
    # With a slash, the orchestrator redirects to /metrics (which nginx hides): no metrics either.
    status, body = raw_get(nginx, "/metrics/", token)
    assert status in (307, 404) and b"meshforge_" not in body
    with nginx.client() as client:
        assert client.get("/health").status_code == 200
    # The log's lines are "$request_uri $status $upstream_addr": none of these went upstream.
    logged = [line.split(" ", 2) for line in nginx.log("access.log").splitlines()]
    upstreams = {uri: upstream for uri, _, upstream in logged if uri in hidden}
    assert upstreams == dict.fromkeys(hidden, "-")


def test_json_is_gzipped(nginx: Nginx) -> None:
    with nginx.client() as client:
        response = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == "gzip"
    assert "paths" in response.json()


def test_a_whole_job_through_nginx(nginx: Nginx, tmp_path: Path) -> None:
    with nginx.client() as client:
        submitted = client.post("/3d/generate", json={"prompt": "a red cube", "output_format": "glb"})
        assert submitted.status_code in (200, 201, 202), submitted.text
        # One long-poll through the proxy: it must not be cut off by a proxy timeout.
        status = client.get(submitted.json()["status_url"], params={"wait": 60})
        assert status.status_code == 200, status.text
        assert status.json()["state"] == "completed", status.json()
        asset = client.get(f"/3d/download/{submitted.json()['job_id']}", headers={"Accept-Encoding": "gzip"})
    assert asset.status_code == 200, asset.text
    assert asset.content.startswith(b"glTF")
    # Already compact: passed through as is, with its length.
    assert "content-encoding" not in asset.headers


def test_live_events_pass_through_nginx_as_they_happen(nginx: Nginx) -> None:
    with nginx.client() as client:
        job_id = client.post("/3d/generate", json={"prompt": "a red cube", "quality_tier": "high"}).json()[
            "job_id"
        ]
        with client.stream("GET", f"/3d/events/{job_id}", timeout=60) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in events.headers
            lines = events.iter_lines()
            first = [next(lines) for _ in range(3)]
            # The first event arrived while the job still ran: nginx buffered nothing.
            assert client.get(f"/3d/status/{job_id}").json()["state"] != "completed"
            rest = list(lines)
    assert first[1] == "event: state"
    assert "event: end" in rest


def noise_png(size: int = 1024) -> bytes:
    """A PNG of random pixels: incompressible, so over 1 MiB (nginx's default body limit)."""
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_large_upload_through_nginx(nginx: Nginx) -> None:
    image = noise_png()
    assert len(image) > 2 * 1024 * 1024
    with nginx.client() as client:
        response = client.post("/3d/upload", files=[("files", ("front.png", image, "image/png"))])
    assert response.status_code == 201, response.text
    assert len(response.json()["image_paths"]) == 1


def test_ui_is_served_through_nginx_at_3d_test(nginx: Nginx) -> None:
    with nginx.client() as client:
        page = client.get("/3d-test/")
        assert page.status_code == 200
        assert "meshforge" in page.text
        # The app's own files come through the same location, with the /3d-test/ prefix kept.
        (script,) = re.findall(r'src="(/3d-test/assets/[^"]+\.js)"', page.text)
        assert client.get(script).status_code == 200
        # and its API calls, made to the same origin, reach the orchestrator.
        assert client.get("/3d/jobs", params={"limit": 1}).status_code == 200


def run_install(prefix: Path, *args: str, project: Path = REPO) -> str:
    result = subprocess.run(
        [str(INSTALL), "--prefix", str(prefix), "--no-systemctl", "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under root with its inode, mtime and link target: what a second run must not change."""
    return {
        str(path.relative_to(root)): (
            path.lstat().st_ino,
            path.lstat().st_mtime_ns,
            os.readlink(path) if path.is_symlink() else "",
        )
        for path in sorted(root.rglob("*"))
    }


def test_install_host_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "root"
    available = root / "etc/nginx/sites-available" / HOST
    enabled = root / "etc/nginx/sites-enabled" / HOST
    unit = root / "etc/systemd/system/scratch-3d.service"
    # A stale link left by an older install is replaced.
    enabled.parent.mkdir(parents=True)
    enabled.symlink_to("/etc/nginx/sites-available/old-name")

    first = run_install(root)
    assert available.read_bytes() == SITE.read_bytes()
    assert os.readlink(enabled) == f"/etc/nginx/sites-available/{HOST}"
    assert f"WorkingDirectory={REPO}\n" in unit.read_text()
    assert "/opt/meshforge" not in unit.read_text().split("[Unit]", 1)[1]
    assert "skipped systemctl" in first

    before = snapshot(root)
    second = run_install(root)
    assert snapshot(root) == before
    assert "installed" not in second and "linked" not in second and "updated" not in second
    # The site, its link, meshforge.env, .env, compose.env and the unit.
    assert second.count("unchanged") == 6


def staged(root: Path, folder: Path = REPO) -> Path:
    """Where install-host --prefix root writes the files that belong in ``folder`` on the host."""
    return root / folder.relative_to("/")


def test_install_host_for_another_host_name(tmp_path: Path) -> None:
    root = tmp_path / "root"
    # An operator's .env with the secrets, and an allowed host from an earlier install in between.
    dotenv = staged(root) / ".env"
    dotenv.parent.mkdir(parents=True)
    dotenv.write_text(
        "MESHFORGE_INTERNAL_TOKEN=t\nMESHFORGE_UI_ALLOWED_HOSTS=old.test\nMESHFORGE_REDIS_PASSWORD=p"
    )
    dotenv.chmod(0o600)
    run_install(root)  # the spec's name first: that site is then enabled
    output = run_install(root, "--host", "Example.test")

    available = root / "etc/nginx/sites-available/example.test"
    enabled = root / "etc/nginx/sites-enabled"
    text = available.read_text()
    # The committed site is the template: only the host name differs (server_name, TLS paths, comments).
    assert text == SITE.read_text().replace(HOST, "example.test")
    assert re.findall(r"^\s*server_name (\S+);", text, re.MULTILINE) == ["example.test"]
    assert "ssl_certificate /etc/letsencrypt/live/example.test/fullchain.pem;" in text
    # The spec's site is unlinked, else nginx would see the meshforge_ zones twice.
    assert [link.name for link in enabled.iterdir()] == ["example.test"]
    assert os.readlink(enabled / "example.test") == "/etc/nginx/sites-available/example.test"
    assert "unlinked" in output
    # nginx accepts it, checked as the committed site is: only its ports changed.
    nginx_test(setup_nginx(tmp_path / "nginx", 45679, text=text))

    # The UI's allowed host: one line replaced in .env (which keeps its other lines and its mode), and
    # meshforge.env created next to docker-compose.yml.
    assert dotenv.read_text() == (
        "MESHFORGE_INTERNAL_TOKEN=t\nMESHFORGE_UI_ALLOWED_HOSTS=example.test\nMESHFORGE_REDIS_PASSWORD=p\n"
    )
    assert dotenv.stat().st_mode & 0o777 == 0o600
    settings = (staged(root) / "meshforge.env").read_text().splitlines()
    assert [line for line in settings if line and not line.startswith("#")] == [
        "MESHFORGE_UI_ALLOWED_HOSTS=example.test"
    ]

    # A later run without --host keeps the name (that of the enabled site) and changes nothing.
    before = snapshot(root)
    again = run_install(root)
    assert snapshot(root) == before
    assert "host name example.test, as before" in again


def test_install_host_starts_meshforge_env_from_the_example(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.yml").write_text("services: {}\n")
    (project / "meshforge.env.example").write_text(
        "# MESHFORGE_UI_ALLOWED_HOSTS=\n# MESHFORGE_LOG_LEVEL=info\n"
    )
    root = tmp_path / "root"
    run_install(root, "--host", "example.test", project=project)
    # The example's commented-out line is the one set.
    assert (staged(root, project) / "meshforge.env").read_text() == (
        "MESHFORGE_UI_ALLOWED_HOSTS=example.test\n# MESHFORGE_LOG_LEVEL=info\n"
    )
    # .env holds only the line (and the secrets the operator adds): it is no copy of the example.
    assert (staged(root, project) / ".env").read_text() == "MESHFORGE_UI_ALLOWED_HOSTS=example.test\n"
    assert (staged(root, project) / ".env").stat().st_mode & 0o777 == 0o600


def test_install_host_refuses_what_is_not_a_host_name(tmp_path: Path) -> None:
    for name in ("a;b", "-x.test", "a b", "example.test/evil", ""):
        result = subprocess.run(
            [str(INSTALL), "--prefix", str(tmp_path), "--no-systemctl", "--host", name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, name
        assert "not a host name" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_ui_answers_the_host_name_install_host_wrote(fleet: Fleet, ui_url: str, tmp_path: Path) -> None:
    # The UI's server answers 403 to a Host it does not know: the session's UI knows only the spec's.
    assert httpx.get(f"{ui_url}/3d-test/", headers={"Host": HOST}, timeout=10).status_code == 200
    assert httpx.get(f"{ui_url}/3d-test/", headers={"Host": "example.test"}, timeout=10).status_code == 403
    # Started with the .env install-host --host wrote, as `make run` (honcho) starts it, it answers that name.
    root = tmp_path / "root"
    run_install(root, "--host", "example.test")
    lines = (staged(root) / ".env").read_text().splitlines()
    written = dict(line.split("=", 1) for line in lines)
    with contextmanager(serve_ui)(fleet, tmp_path, extra_env=written, build=False) as url:
        for host, status in (("example.test", 200), (HOST, 403), ("other.test", 403)):
            answer = httpx.get(f"{url}/3d-test/", headers={"Host": host}, timeout=10)
            assert answer.status_code == status, (host, answer.text[:200])
