"""The web UI under ui/: its Vitest unit tests, and a Playwright smoke run in headless Chromium
against vite preview proxying to the real fleet."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fleet import Fleet, free_port, wait_until
from tests.meshes import canonical_photos, stacked_boxes

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parent.parent
UI = REPO / "ui"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def _require_tools() -> str:
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        pytest.fail("node and npm are needed for the UI tests: install Node 20 (scripts/bootstrap does)")
    if not (UI / "node_modules" / ".bin" / "vite").exists():
        pytest.fail("ui/node_modules is missing: run `npm ci --prefix ui` (scripts/bootstrap does)")
    return npm


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


def test_ui_unit_tests() -> None:
    npm = _require_tools()
    result = _run([npm, "test", "--prefix", "ui"], timeout=180)
    assert result.returncode == 0, f"vitest failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


@pytest.fixture(scope="module")
def ui_url(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Build the app and serve it with vite preview, proxying /3d and /health to the fleet's API."""
    npm = _require_tools()
    build = _run([npm, "run", "build", "--prefix", "ui"], timeout=300)
    assert build.returncode == 0, f"npm run build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    assert (UI / "dist" / "index.html").is_file()
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "vite-preview.log"
    env = {**os.environ, "MESHFORGE_API": fleet.api}
    with log.open("w") as out:
        server = subprocess.Popen(
            [npm, "run", "serve", "--prefix", "ui", "--", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: (
                httpx.get(f"{url}/3d-test/", timeout=2).status_code == 200
                and httpx.get(f"{url}/health", timeout=5).status_code == 200
            ),
            timeout=60,
            what=f"vite preview on {url} (log: {log})",
        )
        yield url
    finally:
        # The npm process group: npm and the vite it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def test_ui_served_with_api_proxy(ui_url: str) -> None:
    page = httpx.get(f"{ui_url}/3d-test/", timeout=10)
    assert "meshforge" in page.text and "/3d-test/assets/" in page.text
    jobs = httpx.get(f"{ui_url}/3d/jobs?limit=1", timeout=10)
    assert jobs.status_code == 200 and "jobs" in jobs.json()


def test_ui_smoke_in_chromium(ui_url: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (scripts/bootstrap does)")
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, png in enumerate(canonical_photos(stacked_boxes(), 4)):
        (photos / f"view{index}.png").write_bytes(png)
    outdir = tmp_path / "smoke"
    started = time.monotonic()
    result = _run(
        ["node", str(UI / "e2e" / "smoke.mjs"), ui_url, str(outdir), str(photos)],
        timeout=300,
        env={**os.environ, "CHROMIUM": str(CHROMIUM)},
    )
    print(result.stdout)
    print(
        f"UI smoke: {time.monotonic() - started:.1f} s; "
        f"screenshot of the finished view: {outdir / 'finished.png'}"
    )
    assert result.returncode == 0, (
        f"UI smoke failed (see {outdir}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    assert (outdir / "finished.png").is_file()
