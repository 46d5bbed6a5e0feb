"""The check that lets the stack tests skip beside a running `make run` (tests/stack_ports.py), on ports of
its own: it never touches the real default ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from meshforge.settings import field_default
from tests.fleet import free_port
from tests.stack_ports import blocked_ports, default_ports, listening_ports, why_unusable


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port something listens on, as a running `make run`'s service would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_listening_port_is_reported_and_the_stack_tests_skip_with_its_number(listener: int) -> None:
    other = free_port()
    ports = (other, listener)
    assert listening_ports(ports) == [listener]
    assert blocked_ports(ports) == [listener]
    reason = why_unusable(ports, wait=0)
    assert reason is not None
    assert f"port(s) {listener} already listening" in reason and "make run" in reason


def test_free_ports_are_usable() -> None:
    ports = (free_port(), free_port())
    assert listening_ports(ports) == []
    assert blocked_ports(ports) == []
    assert why_unusable(ports, wait=0) is None


def test_a_port_held_without_a_listener_is_waited_for_then_reported() -> None:
    with socket.socket() as sock:  # bound, not listening: like a closed connection's port in TIME_WAIT
        sock.bind(("127.0.0.1", free_port()))
        port = sock.getsockname()[1]
        assert listening_ports([port]) == []
        assert blocked_ports([port]) == [port]
        reason = why_unusable((port,), wait=0.3)
    assert reason is not None and f"port(s) {port} could not be bound for 0 s" in reason
    assert why_unusable((port,), wait=0) is None  # released


def test_the_default_ports_are_the_ones_make_run_takes() -> None:
    ports = default_ports()
    assert len(ports) == 7  # 5 services, Redis and the UI (Procfile)
    assert field_default("orchestrator_port") in ports
    assert urlparse(field_default("redis_url")).port in ports  # the Procfile's Redis is the default one
