"""The web UI under ui/: its Vitest unit tests, and the main path in headless Chromium (ui/e2e/smoke.mjs)
against vite preview proxying to the real fleet: a prompt followed through the event stream to the
viewer, its views, downloads under readable names, uploads checked and shown before sending, plain
errors, a phone screen with the result brought into view, axe-core on both.

With MESHFORGE_UI_SCREENSHOTS=<folder> (e.g. docs) the desktop and phone screenshots are saved there for
docs/ui.md as ui-desktop.png and ui-phone.png."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.meshes import canonical_photos, stacked_boxes
from tests.ui import require_ui_tools, run_browser_test, run_in_repo, save_screenshot

pytestmark = pytest.mark.fleet


def test_ui_unit_tests() -> None:
    npm = require_ui_tools()
    result = run_in_repo([npm, "test", "--prefix", "ui"], timeout=180)
    assert result.returncode == 0, f"vitest failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def test_ui_served_with_api_proxy(ui_url: str) -> None:
    page = httpx.get(f"{ui_url}/3d-test/", timeout=10)
    assert "meshforge" in page.text and "/3d-test/assets/" in page.text
    jobs = httpx.get(f"{ui_url}/3d/jobs?limit=1", timeout=10)
    assert jobs.status_code == 200 and "jobs" in jobs.json()


def test_ui_main_path_on_desktop_and_phone(ui_url: str, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, png in enumerate(canonical_photos(stacked_boxes(), 4)):
        (photos / f"view{index}.png").write_bytes(png)
    outdir = tmp_path / "smoke"
    started = time.monotonic()
    run_browser_test("smoke.mjs", ui_url, str(outdir), str(photos))
    print(f"UI smoke: {time.monotonic() - started:.1f} s; screenshots in {outdir}")
    for name in ("desktop.png", "phone.png"):
        assert (outdir / name).is_file()
    if folder := os.environ.get("MESHFORGE_UI_SCREENSHOTS"):
        for name in ("desktop", "phone"):
            size = save_screenshot(outdir / f"{name}.png", Path(folder) / f"ui-{name}.png")
            print(f"saved {folder}/ui-{name}.png ({size} bytes)")
