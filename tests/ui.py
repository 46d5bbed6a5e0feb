"""The web UI for tests: built from ui/ and served by vite preview, proxying the API to the fleet; the
browser tests under ui/e2e/ run in node against it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.fleet import REPO, Fleet, free_port, wait_until

UI = REPO / "ui"


def require_ui_tools() -> str:
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        pytest.fail("node and npm are needed for the UI tests: install Node 20 (scripts/bootstrap does)")
    if not (UI / "node_modules" / ".bin" / "vite").exists():
        pytest.fail("ui/node_modules is missing: run `npm ci --prefix ui` (scripts/bootstrap does)")
    return npm


def run_in_repo(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


def serve_ui(
    fleet: Fleet, folder: Path, extra_env: dict[str, str] | None = None, build: bool = True
) -> Iterator[str]:
    """Build the app and serve it with vite preview, proxying /3d and /health to the fleet's API.

    ``extra_env`` is added to the server's environment; ``build=False`` serves the build already there.
    """
    npm = require_ui_tools()
    if build:
        built = run_in_repo([npm, "run", "build", "--prefix", "ui"], timeout=300)
        assert built.returncode == 0, f"npm run build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    assert (UI / "dist" / "index.html").is_file()
    port = free_port()
    log = folder / "vite-preview.log"
    env = {**os.environ, "MESHFORGE_API": fleet.api, **(extra_env or {})}
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


CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def run_browser_test(
    script: str, *args: str, timeout: float = 420, **env: str
) -> subprocess.CompletedProcess:
    """Run ``ui/e2e/<script>`` in node with ``args`` (Chromium driven by playwright-core); fails the test,
    with the script's output, unless it passes."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (scripts/bootstrap does)")
    result = run_in_repo(
        ["node", str(UI / "e2e" / script), *args],
        timeout=timeout,
        env={**os.environ, "CHROMIUM": str(CHROMIUM), **env},
    )
    print(result.stdout)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return result


def save_screenshot(source: Path, target: Path, max_bytes: int = 300_000) -> int:
    """Copy a screenshot for the docs, at most ``max_bytes``: as it is where it fits, else in 256 colours."""
    with Image.open(source) as image:
        image.convert("RGB").save(target, optimize=True)
        if target.stat().st_size > max_bytes:
            image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(
                target, optimize=True
            )
    size = target.stat().st_size
    assert size <= max_bytes, f"{target} is {size} bytes, over {max_bytes}"
    return size
