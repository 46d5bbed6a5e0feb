"""The UI's job history in headless Chromium (ui/e2e/history.mjs) against the real fleet holding more
than two pages of jobs: "load more" to the end, the state filter, the prompt search over the loaded
pages, date, tier and seed on every row, the user's own job followed and opened after newer jobs pushed
it off the first page, a time estimate from recent jobs of the same tier, "mine", and a phone screen."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui import run_browser_test

pytestmark = pytest.mark.fleet


def test_history_pages_filters_searches_and_follows_own_jobs(ui_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    run_browser_test("history.mjs", ui_url, str(tmp_path))
    print(f"UI history: {time.monotonic() - started:.1f} s; screenshots in {tmp_path}")
