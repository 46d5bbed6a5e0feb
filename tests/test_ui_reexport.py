"""A finished GLB job downloaded as STL and OBJ from the UI in headless Chromium (ui/e2e/reexport.mjs): the
format choice beside the download, each conversion drawn in the 3D view with the GLB's face count, and
each download a valid file under the name made from the prompt."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui import run_browser_test

pytestmark = pytest.mark.fleet


def test_a_glb_job_is_shown_and_downloaded_as_stl_and_obj(ui_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    run_browser_test("reexport.mjs", ui_url, str(tmp_path))
    print(f"UI re-export: {time.monotonic() - started:.1f} s; files and screenshots in {tmp_path}")
