"""The web UI under ui/: its Vitest unit tests, and a Playwright smoke run in headless Chromium
against vite preview proxying to the real fleet."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.meshes import canonical_photos, stacked_boxes
from tests.ui import require_ui_tools, run_in_repo

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parent.parent
UI = REPO / "ui"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def test_ui_unit_tests() -> None:
    npm = require_ui_tools()
    result = run_in_repo([npm, "test", "--prefix", "ui"], timeout=180)
    assert result.returncode == 0, f"vitest failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


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
    result = run_in_repo(
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
