from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fleet import Fleet, start_fleet


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Redis and every service as real processes talking HTTP on loopback, for the whole session."""
    running = start_fleet(tmp_path_factory.mktemp("fleet"))
    yield running
    running.stop()


@pytest.fixture
def api(fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fleet.api, timeout=30) as client:
        yield client
