"""Progress within a stage in the UI, in headless Chromium (ui/e2e/progress.mjs): a high-tier job's row
names the running stage's count and its bar moves between stage starts, never back; a completed row
shows no count."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui import run_browser_test

pytestmark = pytest.mark.fleet


def test_a_running_jobs_row_shows_its_stage_count_and_progress_between_stages(
    ui_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    run_browser_test("progress.mjs", ui_url, str(tmp_path))
    print(f"UI stage progress: {time.monotonic() - started:.1f} s; report and screenshot in {tmp_path}")
