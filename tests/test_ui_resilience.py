"""The UI when things go wrong, in headless Chromium (ui/e2e/resilience.mjs): the health badge re-checked
while the API is gone and when it is back, a job followed by polling where the event stream is refused,
a proxy's 502 page never shown (a plain sentence, once, the detail behind a toggle), and a failed job in
plain words with a red bar, announced once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui import run_browser_test

pytestmark = pytest.mark.fleet


def test_errors_are_plain_and_the_page_recovers(ui_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    run_browser_test("resilience.mjs", ui_url, str(tmp_path))
    print(f"UI resilience: {time.monotonic() - started:.1f} s; screenshots in {tmp_path}")
