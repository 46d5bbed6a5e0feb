"""Path B with image URLs: views fetched from a real HTTP server on loopback.

Production fetches only from public addresses, so these jobs run on a stack of their own whose
image-service and orchestrator allow-list 127.0.0.0/8 (tests/fetching_stack.py); the session fleet
refuses the same URLs (tests/test_ssrf.py)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.fetching_stack import start_fetching_stack
from tests.fleet import Fleet, download, wait_for_end
from tests.meshes import canonical_photos, load, stacked_boxes

pytestmark = pytest.mark.fleet


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def photo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("photos")
    for index, png in enumerate(canonical_photos(stacked_boxes(), 4)):
        (folder / f"view{index}.png").write_bytes(png)
    (folder / "notes.txt").write_text("not an image")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


STACK_DB = 8


@pytest.fixture(scope="module")
def api(fleet: Fleet) -> Iterator[httpx.Client]:
    """The API of a stack that may fetch from loopback (shadows conftest's fleet-wide ``api``)."""
    stack = start_fetching_stack(fleet, "from-urls", STACK_DB, "127.0.0.0/8")
    try:
        with httpx.Client(base_url=stack.api, timeout=30) as client:
            yield client
    finally:
        stack.stop()


def submit(api: httpx.Client, urls: list[str]) -> dict:
    response = api.post("/3d/from-image", json={"image_urls": urls})
    assert response.status_code == 200, response.text
    return wait_for_end(api, response.json()["job_id"])


def test_views_at_urls_are_downloaded_and_reconstructed(
    api: httpx.Client, photo_server: str, tmp_path: Path
) -> None:
    status = submit(api, [f"{photo_server}/view{i}.png" for i in range(4)])
    assert status["state"] == "completed", status["message"]
    assert status["stages"]["generating_images"]["backend"] == "url-download"
    assert load(download(api, status["job_id"], tmp_path)).is_watertight


def test_a_missing_url_fails_the_job_naming_the_url_not_the_status(
    api: httpx.Client, photo_server: str
) -> None:
    status = submit(api, [f"{photo_server}/missing.png"])
    assert status["state"] == "failed"
    assert f"{photo_server}/missing.png" in status["message"] and "could not be fetched" in status["message"]
    assert "404" not in status["message"]


def test_a_url_that_is_not_an_image_fails_the_job_with_the_reason(
    api: httpx.Client, photo_server: str
) -> None:
    status = submit(api, [f"{photo_server}/notes.txt"])
    assert status["state"] == "failed"
    assert "did not answer with an image" in status["message"] and "text/plain" not in status["message"]
