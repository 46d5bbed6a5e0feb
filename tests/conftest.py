from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api_keys import key_list
from tests.fleet import Fleet, start_fleet
from tests.stack_ports import default_ports, why_unusable
from tests.ui import serve_ui

_STACK_PORTS = pytest.StashKey[str | None]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``stack`` runs `make run` on the default ports: beside a running `make run` (or while
    anything else holds one of them) it skips, saying which port and why, instead of failing. Asked once
    per session, before the first such test: after it, the ports are the stack tests' own."""
    if item.get_closest_marker("stack") is None:
        return
    if _STACK_PORTS not in item.config.stash:
        item.config.stash[_STACK_PORTS] = why_unusable(default_ports())
    reason = item.config.stash[_STACK_PORTS]
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Redis and every service as real processes talking HTTP on loopback, for the whole session."""
    running = start_fleet(tmp_path_factory.mktemp("fleet"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def keys_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A fleet with API keys on (tests/api_keys.py), shared by the keys, quotas and UI-keys tests."""
    running = start_fleet(
        tmp_path_factory.mktemp("keys-fleet"),
        flux_replicas=1,
        reconstruction_replicas=1,
        extra_env={"MESHFORGE_API_KEYS": key_list()},
    )
    yield running
    running.stop()


@pytest.fixture
def api(fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fleet.api, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def ui_url(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built web UI served by vite preview on a free port, its API calls going to the fleet."""
    yield from serve_ui(fleet, tmp_path_factory.mktemp("ui"))
