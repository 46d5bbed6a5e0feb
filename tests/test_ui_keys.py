"""The web UI against a fleet with API keys on, in headless Chromium (ui/e2e/keys.mjs): without a key it
says plainly that one is needed; with one it keeps it in the browser and sends it as a Bearer header on
every call (event stream, viewer, views, thumbnails and downloads included, never in a URL); a rate
limit shows when to try again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_keys import KEYS
from tests.fleet import Fleet
from tests.ui import run_browser_test, serve_ui

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def keys_ui_url(keys_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_ui(keys_fleet, tmp_path_factory.mktemp("keys-ui"))


def test_ui_asks_for_a_key_sends_it_on_every_call_and_shows_rate_limits(
    keys_ui_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    run_browser_test("keys.mjs", keys_ui_url, str(tmp_path), KEY=KEYS["alice"][0], TINY_KEY=KEYS["tiny"][0])
    print(f"UI keys test: {time.monotonic() - started:.1f} s; screenshots in {tmp_path}")
