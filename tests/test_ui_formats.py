"""The UI's viewer for every output format in headless Chromium (ui/e2e/formats.mjs): OBJ (its zip opened
in the browser), STL, FBX and USDZ drawn by three.js with counts and file size, an AR Quick Look link for
USDZ, and each download under a name made from the prompt."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui import run_browser_test

pytestmark = pytest.mark.fleet


def test_viewer_draws_every_format_and_names_downloads(ui_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    run_browser_test("formats.mjs", ui_url, str(tmp_path))
    print(f"UI formats: {time.monotonic() - started:.1f} s; files and screenshots in {tmp_path}")
