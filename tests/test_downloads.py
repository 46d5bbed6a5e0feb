"""URL downloads for /imagine/from-urls against a real HTTP server on loopback.

The server misbehaves in every way the limits guard against: slow, huge (declared and undeclared),
wrong content type, redirect chains and loops, 404, bytes that are not an image, images too small.
Every failure must name the URL the user gave and the reason, never what the server answered (status,
content type, declared size). The server is on loopback, so the client allow-lists 127.0.0.0/8
(tests/test_ssrf.py proves that without it nothing on loopback is reached).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from image_service.downloads import DownloadFailed, DownloadLimits, download_client, download_image
from meshforge.settings import load_settings
from tests.tiny_matting import build_tiny_matting_model

LIMITS = DownloadLimits(
    max_bytes=200_000, timeout_seconds=1.0, max_redirects=3, content_types=("image/png", "image/jpeg")
)


def png(size: tuple[int, int] = (96, 64)) -> bytes:
    image = Image.new("RGB", size, (235, 235, 230))
    image.paste((200, 40, 40), (30, 20, 66, 44))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class MisbehavingServer(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(
        self, status: int, body: bytes, content_type: str = "image/png", length: int | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path
        try:
            if path == "/ok.png":
                self._send(200, png())
            elif path == "/ok.jpg":
                self._send(200, png(), content_type="image/jpeg; charset=binary")  # decoded by content
            elif path == "/slow.png":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"x" * 10)
                    self.wfile.flush()
                    time.sleep(0.1)
            elif path == "/huge-declared.png":
                self._send(200, b"", length=10_000_000)
            elif path == "/huge-streamed.png":  # no Content-Length: the limit must hold while reading
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"x" * 10_000)
            elif path == "/page.png":
                self._send(200, b"<html>hello</html>", content_type="text/html")
            elif path == "/vector.svg":
                self._send(200, b"<svg/>", content_type="image/svg+xml")
            elif path == "/garbage.png":
                self._send(200, b"\x89PNG but not really" * 10)
            elif path == "/tiny.png":
                self._send(200, png((8, 8)))
            elif path.startswith("/hop/"):
                left = int(path.rsplit("/", 1)[1])
                self._redirect("/ok.png" if left == 0 else f"/hop/{left - 1}")
            elif path == "/loop":
                self._redirect("/loop")
            elif path == "/to-ftp":
                self._redirect("ftp://127.0.0.1/ok.png")
            elif path == "/redirect-to-missing":
                self._redirect("/missing.png")
            else:
                self._send(404, b"not found", content_type="text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), MisbehavingServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


LOOPBACK_ALLOWED = ["127.0.0.0/8"]


def fetch(url: str, limits: DownloadLimits = LIMITS) -> Image.Image:
    async def run() -> Image.Image:
        async with download_client(allowed_networks=LOOPBACK_ALLOWED) as client:
            return await download_image(client, url, limits)

    return asyncio.run(run())


def failure(url: str, limits: DownloadLimits = LIMITS) -> str:
    with pytest.raises(DownloadFailed) as error:
        fetch(url, limits)
    assert error.value.url == url
    assert url in error.value.message
    return error.value.reason


def test_an_image_is_downloaded_and_decoded(server: str) -> None:
    assert fetch(f"{server}/ok.png").size == (96, 64)


def test_content_type_parameters_are_ignored(server: str) -> None:
    assert fetch(f"{server}/ok.jpg").size == (96, 64)


def test_a_short_redirect_chain_is_followed(server: str) -> None:
    assert fetch(f"{server}/hop/2").size == (96, 64)  # 3 redirects: the limit


def test_too_many_redirects_fail(server: str) -> None:
    assert "more than 3 redirects" in failure(f"{server}/hop/3")


def test_a_redirect_loop_fails(server: str) -> None:
    assert "more than 3 redirects" in failure(f"{server}/loop")


def test_redirects_off_http_fail(server: str) -> None:
    assert "only http and https" in failure(f"{server}/to-ftp")


def test_a_slow_server_hits_the_time_limit(server: str) -> None:
    started = time.monotonic()
    assert "within 1 s" in failure(f"{server}/slow.png")
    assert time.monotonic() - started < 3


def test_a_declared_huge_body_is_refused_before_reading(server: str) -> None:
    reason = failure(f"{server}/huge-declared.png")
    assert "too large (the limit is 200000 bytes)" in reason
    assert "10000000" not in reason  # the size the server declared is its answer: not repeated


def test_an_undeclared_huge_body_is_cut_off_at_the_limit(server: str) -> None:
    assert "too large (the limit is 200000 bytes)" in failure(f"{server}/huge-streamed.png")


def test_a_wrong_content_type_is_refused_without_naming_it(server: str) -> None:
    reason = failure(f"{server}/page.png")
    assert "did not answer with an image" in reason and "image/png" in reason
    assert "text/html" not in reason


def test_content_types_outside_the_allowed_list_are_refused(server: str) -> None:
    reason = failure(f"{server}/vector.svg")
    assert "did not answer with an image" in reason and "svg" not in reason


def test_bytes_that_are_not_an_image_are_refused(server: str) -> None:
    assert "could not be decoded" in failure(f"{server}/garbage.png")


def test_images_too_small_to_use_are_refused(server: str) -> None:
    assert "8×8 pixels is too small" in failure(f"{server}/tiny.png")


def test_a_missing_file_fails_without_the_status(server: str) -> None:
    reason = failure(f"{server}/missing.png")
    assert reason.startswith("could not be fetched: the server did not answer with an image")
    assert "404" not in reason


def test_a_redirect_to_a_missing_file_does_not_say_where_it_led(server: str) -> None:
    reason = failure(f"{server}/redirect-to-missing")
    assert "did not answer with an image" in reason
    assert "404" not in reason and "missing.png" not in reason


def test_an_unreachable_host_fails_naming_the_url_only() -> None:
    reason = failure("http://127.0.0.1:9/none.png")
    assert reason == "could not be fetched: the server could not be reached"


@pytest.fixture
def image_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from image_service.app import app

    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_DOWNLOAD_MAX_REDIRECTS", "1")
    monkeypatch.setenv("MESHFORGE_OUTBOUND_ALLOWED_NETWORKS", ",".join(LOOPBACK_ALLOWED))
    load_settings.cache_clear()
    with TestClient(app) as client:
        yield client
    load_settings.cache_clear()


def job_inputs(data_dir: Path) -> Path:
    """A job's folder under inputs/, where the dispatcher has image-service write the job's views."""
    return data_dir / "inputs" / "jobs" / uuid.uuid4().hex


def test_from_urls_normalises_and_reports_the_matting_backend(
    image_service: TestClient, server: str, tmp_path: Path
) -> None:
    folder = job_inputs(tmp_path)
    body = {"urls": [f"{server}/ok.png"], "image_size": 64, "output_dir": str(folder)}
    response = image_service.post("/imagine/from-urls", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["views"] == ["front"] and result["detail"]["matting"] == "flood_fill"
    assert result["image_paths"] == [str(folder / "views" / "00-front.png")]
    assert Image.open(result["image_paths"][0]).size == (64, 64)
    assert image_service.get("/health").json()["detail"]["matting"] == "flood_fill"


def test_from_urls_failures_name_the_url_and_use_the_configured_limits(
    image_service: TestClient, server: str, tmp_path: Path
) -> None:
    url = f"{server}/hop/1"  # 2 redirects; MESHFORGE_DOWNLOAD_MAX_REDIRECTS=1
    urls = [f"{server}/ok.png", url, f"{server}/ok.png", f"{server}/ok.png"]
    folder = job_inputs(tmp_path)
    response = image_service.post("/imagine/from-urls", json={"urls": urls, "output_dir": str(folder)})
    assert response.status_code == 422
    assert url in response.json()["detail"] and "more than 1 redirects" in response.json()["detail"]
    assert not folder.exists()  # nothing of a failed download is kept


def test_from_urls_without_an_output_folder_is_refused_naming_the_field(
    image_service: TestClient, server: str
) -> None:
    response = image_service.post("/imagine/from-urls", json={"urls": [f"{server}/ok.png"], "image_size": 64})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"
    assert response.json()["detail"] == "output_dir: this field is required"


def test_onnx_matting_is_loaded_from_models_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    from image_service.app import app

    build_tiny_matting_model(tmp_path / "models" / "matting" / "u2net.onnx")
    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_MATTING_BACKEND", "onnx")
    monkeypatch.setenv("MESHFORGE_OUTBOUND_ALLOWED_NETWORKS", ",".join(LOOPBACK_ALLOWED))
    load_settings.cache_clear()
    try:
        with TestClient(app) as client:
            body = {"urls": [f"{server}/ok.png"], "image_size": 64, "output_dir": str(job_inputs(tmp_path))}
            response = client.post("/imagine/from-urls", json=body)
    finally:
        load_settings.cache_clear()
    assert response.status_code == 200, response.text
    assert response.json()["detail"]["matting"] == "onnx"


def test_missing_onnx_model_stops_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from image_service.app import app
    from meshforge.errors import ModelNotFound

    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_MATTING_BACKEND", "onnx")
    load_settings.cache_clear()
    try:
        with pytest.raises(ModelNotFound, match="scripts/download-models"), TestClient(app):
            pass
    finally:
        load_settings.cache_clear()
