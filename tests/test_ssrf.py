"""Server-side request forgery: no URL, name or redirect may make meshforge fetch from inside.

Two live servers listen on the same port: an "inside" server on 127.0.0.1 and [::1] that counts its
hits and must never be hit, and an "outside" server on 127.0.0.2, the only address the tests allow
(``MESHFORGE_OUTBOUND_ALLOWED_NETWORKS=127.0.0.2/32``), which serves images and redirects. Names are
answered by injected resolvers (no DNS query leaves the machine), and private, link-local and metadata
addresses are only ever refused, never connected to. Sharing the port means that a fetch which re-read
a name, or mistook 0x7f000001 for another address, would really reach the counting server.
"""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from image_service.downloads import DownloadFailed, DownloadLimits, download_client, download_image
from meshforge.outbound import OutboundClient, Resolver
from meshforge.settings import load_settings
from tests.fetching_stack import start_fetching_stack
from tests.fleet import Fleet, wait_for_end
from tests.meshes import canonical_photos, stacked_boxes

ALLOWED = "127.0.0.2/32"
LIMITS = DownloadLimits(
    max_bytes=2_000_000, timeout_seconds=5.0, max_redirects=3, content_types=("image/png",)
)
STACK_DB = 9


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], files: dict[str, bytes], hits: list[str]) -> None:
        self.files = files
        self.redirects: dict[str, str] = {}
        self.hits = hits
        super().__init__(address, Handler)


class Server6(Server):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.server.files.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "image/png" if body else "text/plain")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@dataclass
class Net:
    port: int
    outside: Server
    inside_hits: list[str]  # every request the 127.0.0.1 / [::1] servers got: must stay empty
    _serial: list[int] = field(default_factory=lambda: [0])

    @property
    def base(self) -> str:
        return f"http://127.0.0.2:{self.port}"

    def redirect_to(self, location: str) -> str:
        """A URL on the outside server that redirects to ``location`` (its path does not reveal where)."""
        self._serial[0] += 1
        path = f"/r/{self._serial[0]}"
        self.outside.redirects[path] = location
        return self.base + path


def _start(servers: Sequence[Server]) -> None:
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    photos = {f"/view{i}.png": data for i, data in enumerate(canonical_photos(stacked_boxes(), 4))}
    outside_files = {"/ok.png": png(), **photos}
    inside_files = {"/secret.png": png(), "/ok.png": png()}  # images: a fetch there would succeed
    for _ in range(50):
        outside = Server(("127.0.0.2", 0), outside_files, [])
        port = outside.server_address[1]
        inside: list[Server] = []
        hits: list[str] = []
        try:
            inside.append(Server(("127.0.0.1", port), inside_files, hits))
            inside.append(Server6(("::1", port), inside_files, hits))
        except OSError:
            for server in [outside, *inside]:
                server.server_close()
            continue
        _start([outside, *inside])
        yield Net(port, outside, hits)
        for server in [outside, *inside]:
            server.shutdown()
            server.server_close()
        return
    pytest.fail("no port free on 127.0.0.1, 127.0.0.2 and ::1 at once")


# --- In-process: download_image with an injected resolver and a recording transport ---------------


class Recording(httpx.AsyncBaseTransport):
    """The real transport, keeping every request it was asked to send (its URL holds the address)."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def resolver(answers: dict[str, list[str]], calls: list[str] | None = None) -> Resolver:
    """Answers names from ``answers``; any other name does not resolve (no real DNS in tests)."""

    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    return resolve


def fetch(
    url: str,
    *,
    answers: dict[str, list[str]] | None = None,
    transport: Recording | None = None,
    resolve: Resolver | None = None,
    allowed: str = ALLOWED,
) -> Image.Image:
    async def run() -> Image.Image:
        client = download_client(
            allowed_networks=[allowed], resolver=resolve or resolver(answers or {}), transport=transport
        )
        async with client:
            return await download_image(client, url, LIMITS)

    return asyncio.run(run())


def refused(url: str, **kwargs: object) -> DownloadFailed:
    with pytest.raises(DownloadFailed) as error:
        fetch(url, **kwargs)  # type: ignore[arg-type]
    return error.value


def test_the_inside_server_answers_whoever_is_allowed_to_reach_it(net: Net) -> None:
    """The control: the counting server is real, so the refusals below are what keeps it unhit."""

    async def run() -> Image.Image:
        async with download_client(allowed_networks=["127.0.0.0/8", "::1/128"]) as client:
            return await download_image(client, f"http://[::1]:{net.port}/secret.png", LIMITS)

    assert asyncio.run(run()).size == (64, 48)
    assert net.inside_hits == ["/secret.png"]
    net.inside_hits.clear()


INSIDE_FORMS = [
    "http://127.0.0.1:{port}/secret.png",
    "http://[::1]:{port}/secret.png",
    "http://0x7f000001:{port}/secret.png",
    "http://0X7F000001:{port}/secret.png",
    "http://2130706433:{port}/secret.png",
    "http://017700000001:{port}/secret.png",
    "http://127.1:{port}/secret.png",
    "http://127.0.1:{port}/secret.png",
    "http://0177.0.0.1:{port}/secret.png",
    "http://0x7f.1:{port}/secret.png",
    "http://127.000.000.001:{port}/secret.png",
    "http://127.0.0.1.:{port}/secret.png",
    "http://１２７.０.０.１:{port}/secret.png",
    "http://[::ffff:127.0.0.1]:{port}/secret.png",
    "http://[::ffff:7f00:1]:{port}/secret.png",
    "http://[0:0:0:0:0:0:0:1]:{port}/secret.png",
    "http://[::127.0.0.1]:{port}/secret.png",
    "http://[::ffff:127.0.0.2]:{port}/ok.png",  # even the allowed address, in another family's form
    "http://0:{port}/secret.png",  # 0.0.0.0 reaches the host itself
    "http://0.0.0.0:{port}/secret.png",
    "http://localhost:{port}/secret.png",
    "http://localhost.:{port}/secret.png",
    "http://LOCALHOST:{port}/secret.png",
    "http://images.localhost:{port}/secret.png",
    "http://user:pw@127.0.0.1:{port}/secret.png",
    "http://user:pw@127.0.0.2:{port}/ok.png",  # credentials are refused even for an allowed address
    "http://127.0.0.2:{port}@127.0.0.1:{port}/secret.png",
    "http://127.0.0.2:{port}\\@127.0.0.1:{port}/secret.png",
    "http://%31%32%37.0.0.1:{port}/secret.png",
]


@pytest.mark.parametrize("form", INSIDE_FORMS)
def test_no_url_form_reaches_the_inside_server(net: Net, form: str) -> None:
    transport = Recording()
    error = refused(form.format(port=net.port), transport=transport)
    assert error.reason.startswith("not allowed: ")
    assert "pw" not in error.message and "user" not in error.message
    assert transport.requests == [] and net.inside_hits == []


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["::1"],
        ["::ffff:127.0.0.1"],
        ["0.0.0.0"],
        ["169.254.169.254"],  # refused before any connection: the metadata service is never reached
        ["10.0.0.1"],
        ["fd00::1"],
        ["fe80::1%lo"],
        ["127.0.0.2", "127.0.0.1"],  # one inside answer among allowed ones is enough to refuse
        ["127.0.0.1", "127.0.0.2"],
    ],
)
def test_a_name_resolving_inside_is_refused_before_connecting(net: Net, answer: list[str]) -> None:
    transport = Recording()
    hits_before = len(net.outside.hits)
    error = refused(
        f"http://images.example:{net.port}/ok.png", answers={"images.example": answer}, transport=transport
    )
    assert error.reason.startswith("not allowed: only public internet addresses")
    assert transport.requests == [] and net.inside_hits == [] and len(net.outside.hits) == hits_before


REDIRECT_TARGETS = [
    "http://127.0.0.1:{port}/secret.png",
    "http://[::1]:{port}/secret.png",
    "http://0x7f000001:{port}/secret.png",
    "http://2130706433:{port}/secret.png",
    "http://127.1:{port}/secret.png",
    "http://[::ffff:127.0.0.1]:{port}/secret.png",
    "http://localhost:{port}/secret.png",
    "//127.0.0.1:{port}/secret.png",  # scheme-relative
    "http://inside.example:{port}/secret.png",  # a name the resolver answers with 127.0.0.1
    "http://user:pw@127.0.0.2:{port}/ok.png",
    "http://169.254.169.254/latest/meta-data/",
    "gopher://127.0.0.1:{port}/_secret",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("location", REDIRECT_TARGETS)
def test_a_redirect_from_an_allowed_server_cannot_lead_inside(net: Net, location: str) -> None:
    target = location.format(port=net.port)
    url = net.redirect_to(target)
    transport = Recording()
    error = refused(url, answers={"inside.example": ["127.0.0.1"]}, transport=transport)
    assert error.reason.startswith("not allowed: ") and error.reason.endswith("(at redirect 1)")
    assert target not in error.message and "302" not in error.message and "pw" not in error.message
    assert [r.url.host for r in transport.requests] == ["127.0.0.2"]
    assert net.inside_hits == []


def test_every_hop_of_a_redirect_chain_is_checked(net: Net) -> None:
    inner = net.redirect_to(f"http://127.0.0.1:{net.port}/secret.png")
    error = refused(net.redirect_to(inner))
    assert error.reason.endswith("(at redirect 2)") and net.inside_hits == []
    assert fetch(net.redirect_to(net.redirect_to("/ok.png"))).size == (64, 48)  # allowed hops pass


def rebinding(calls: list[str]) -> Resolver:
    """Answers the allowed address first, then the inside one: what a DNS rebinding attacker does."""

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.2"] if len(calls) == 1 else ["127.0.0.1"]

    return resolve


def test_a_rebinding_name_is_resolved_once_and_the_checked_address_used(net: Net) -> None:
    calls: list[str] = []
    transport = Recording()
    image = fetch(f"http://rebind.example:{net.port}/ok.png", resolve=rebinding(calls), transport=transport)
    assert image.size == (64, 48)
    assert calls == ["rebind.example"]
    (request,) = transport.requests
    assert request.url.host == "127.0.0.2" and request.headers["host"] == f"rebind.example:{net.port}"
    assert net.inside_hits == []


def test_a_rebinding_name_met_again_at_a_redirect_is_refused(net: Net) -> None:
    calls: list[str] = []
    transport = Recording()
    path = net.redirect_to("/ok.png").removeprefix(net.base)  # relative: the same name again
    error = refused(f"http://rebind.example:{net.port}{path}", resolve=rebinding(calls), transport=transport)
    assert error.reason.endswith("(at redirect 1)")
    assert calls == ["rebind.example", "rebind.example"]
    assert [r.url.host for r in transport.requests] == ["127.0.0.2"] and net.inside_hits == []


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(net: Net) -> None:
    transport = Recording()
    answers = {"images.example": ["127.0.0.3", "127.0.0.2"]}  # nothing listens on 127.0.0.3
    image = fetch(
        f"http://images.example:{net.port}/ok.png",
        answers=answers,
        transport=transport,
        allowed="127.0.0.2/31",
    )
    assert image.size == (64, 48)
    assert [r.url.host for r in transport.requests] == ["127.0.0.3", "127.0.0.2"] and net.inside_hits == []


def test_caller_headers_do_not_follow_a_redirect_to_another_origin() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:  # a mock: nothing connects anywhere
        seen.append(request)
        if request.url.path == "/hook":
            return httpx.Response(307, headers={"location": "/moved"})
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"location": "https://other.example/final"})
        return httpx.Response(204)

    async def run() -> int:
        public = resolver({"hooks.example": ["93.184.216.34"], "other.example": ["93.184.216.35"]})
        client = OutboundClient(resolver=public, transport=httpx.MockTransport(answer))
        headers = {"Authorization": "secret"}
        hook = client.stream("https://hooks.example/hook", method="POST", headers=headers, content=b"{}")
        async with client, hook as response:
            return response.status_code

    assert asyncio.run(run()) == 204
    assert [(r.method, r.content) for r in seen] == [("POST", b"{}"), ("GET", b""), ("GET", b"")]
    assert [(r.headers["host"], "authorization" in r.headers) for r in seen] == [
        ("hooks.example", True),
        ("hooks.example", True),  # the same origin keeps them
        ("other.example", False),
    ]


def test_proxy_environment_variables_are_ignored(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{net.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert fetch(f"{net.base}/ok.png").size == (64, 48)
    assert net.inside_hits == []


def test_messages_name_the_url_without_credentials_or_what_a_server_answered(net: Net) -> None:
    error = refused(f"http://user:secret@127.0.0.2:{net.port}/ok.png")
    assert error.message == (
        f"could not use the image at http://127.0.0.2:{net.port}/ok.png: "
        "not allowed: credentials in URLs are not accepted"
    )
    missing = refused(f"{net.base}/missing.png")
    assert missing.reason.startswith("could not be fetched: the server did not answer with an image")
    assert "404" not in missing.message and "text/plain" not in missing.message
    assert (
        refused("http://nowhere.example/a.png").reason
        == "could not be fetched: its host name could not be resolved"
    )


def test_https_is_sent_to_the_checked_address_with_host_and_sni_for_the_name() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:  # a mock: nothing connects anywhere
        seen.append(request)
        return httpx.Response(200, headers={"content-type": "image/png"}, content=png())

    transport = Recording(httpx.MockTransport(answer))
    fetch(
        "https://images.example/a.png?v=1", answers={"images.example": ["93.184.216.34"]}, transport=transport
    )
    fetch("https://93.184.216.34:8443/b.png", transport=transport)
    named, literal = seen
    assert str(named.url) == "https://93.184.216.34/a.png?v=1" and named.headers["host"] == "images.example"
    assert named.extensions["sni_hostname"] == "images.example"
    assert literal.headers["host"] == "93.184.216.34:8443" and "sni_hostname" not in literal.extensions


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.2 whose certificate names images.example only (not its address)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=images.example", "-addext", "subjectAltName=DNS:images.example",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    except (FileNotFoundError, subprocess.CalledProcessError):
        pytest.skip("openssl cannot make a test certificate here")
    server = Server(("127.0.0.2", 0), {"/ok.png": png()}, [])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _start([server])
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def test_the_certificate_is_checked_against_the_name_not_the_address(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server

    def verified() -> Recording:
        return Recording(httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(cert))))

    answers = {"images.example": ["127.0.0.2"], "other.example": ["127.0.0.2"]}
    assert fetch(f"https://images.example:{port}/ok.png", answers=answers, transport=verified()).size == (
        64,
        48,
    )
    for wrong_name in (f"https://other.example:{port}/ok.png", f"https://127.0.0.2:{port}/ok.png"):
        error = refused(wrong_name, answers=answers, transport=verified())
        assert error.reason == "could not be fetched: the server could not be reached"


# --- image-service's /imagine/from-urls, in-process ------------------------------------------------


@pytest.fixture
def image_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from image_service.app import app

    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_OUTBOUND_ALLOWED_NETWORKS", ALLOWED)
    load_settings.cache_clear()
    with TestClient(app) as client:
        yield client
    load_settings.cache_clear()


def test_image_service_refuses_inside_urls_with_422_and_no_credentials(
    image_service: TestClient, net: Net, tmp_path: Path
) -> None:
    output_dir = str(tmp_path / "inputs" / "jobs" / uuid.uuid4().hex)  # the job's folder, as dispatched
    hostile = [
        f"http://user:pw@127.0.0.1:{net.port}/secret.png",
        f"http://0x7f000001:{net.port}/secret.png",
        net.redirect_to(f"http://[::1]:{net.port}/secret.png"),
    ]
    for url in hostile:
        response = image_service.post("/imagine/from-urls", json={"urls": [url], "output_dir": output_dir})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "not allowed" in detail and "pw" not in detail
    body = {"urls": [f"{net.base}/view0.png"], "image_size": 64, "output_dir": output_dir}
    ok = image_service.post("/imagine/from-urls", json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["image_paths"] == [f"{output_dir}/views/00-front.png"]
    assert net.inside_hits == []


# --- Through the real fleet ------------------------------------------------------------------------

SUBMITTED_FORMS = [
    "http://127.0.0.1:{port}/secret.png",
    "http://[::1]:{port}/secret.png",
    "http://0x7f000001:{port}/secret.png",
    "http://2130706433:{port}/secret.png",
    "http://127.1:{port}/secret.png",
    "http://0177.0.0.1:{port}/secret.png",
    "http://127.0.0.1.:{port}/secret.png",
    "http://[::ffff:127.0.0.1]:{port}/secret.png",
    "http://user:pw@127.0.0.1:{port}/secret.png",
    "http://localhost:{port}/secret.png",
    "http://localhost.:{port}/secret.png",
    "http://127.0.0.2:{port}/view0.png",  # the session fleet allows no loopback address at all
]


@pytest.mark.fleet
@pytest.mark.parametrize("form", SUBMITTED_FORMS)
def test_the_api_refuses_inside_urls_at_submission(api: httpx.Client, net: Net, form: str) -> None:
    url = form.format(port=net.port)
    response = api.post("/3d/from-image", json={"image_urls": [f"{net.base}/view0.png", url, url, url]})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "not allowed" in detail and f":{net.port}/" in detail
    assert "pw" not in detail and "user" not in detail
    assert net.inside_hits == []
    assert api.get("/health").status_code == 200


@pytest.fixture(scope="module")
def allowed_api(fleet: Fleet) -> Iterator[httpx.Client]:
    """A stack (orchestrator, dispatcher, image-service) that may fetch from 127.0.0.2 only."""
    stack = start_fetching_stack(fleet, "ssrf", STACK_DB, ALLOWED)
    try:
        with httpx.Client(base_url=stack.api, timeout=30) as client:
            yield client
    finally:
        stack.stop()


@pytest.mark.fleet
def test_jobs_redirected_inside_fail_clearly_and_other_jobs_finish(
    allowed_api: httpx.Client, net: Net
) -> None:
    views = [f"{net.base}/view{i}.png" for i in range(4)]
    hostile = {
        net.redirect_to(f"http://127.0.0.1:{net.port}/secret.png"): "not allowed",
        net.redirect_to(f"http://[::1]:{net.port}/secret.png"): "not allowed",
        net.redirect_to(f"http://localhost:{net.port}/secret.png"): "not allowed",
        net.redirect_to("http://169.254.169.254/latest/meta-data/"): "not allowed",
    }
    started = time.monotonic()
    jobs = {}
    for url in [*hostile, None]:
        image_urls = [*views[:3], url] if url else views
        response = allowed_api.post("/3d/from-image", json={"image_urls": image_urls})
        assert response.status_code == 200, response.text
        jobs[url] = response.json()["job_id"]
    credentials = allowed_api.post(
        "/3d/from-image", json={"image_urls": [f"http://u:pw@127.0.0.2:{net.port}/a.png"]}
    )
    assert credentials.status_code == 422 and "pw" not in credentials.json()["detail"]

    for url, expected in hostile.items():
        status = wait_for_end(allowed_api, jobs[url], timeout=120)
        assert status["state"] == "failed", status
        assert url in status["message"] and expected in status["message"], status["message"]
        assert "127.0.0.1" not in status["message"] and "302" not in status["message"]
    good = wait_for_end(allowed_api, jobs[None], timeout=120)
    assert good["state"] == "completed", good["message"]
    assert net.inside_hits == []
    assert time.monotonic() - started < 120
