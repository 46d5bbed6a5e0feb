"""The ports `make run` listens on, and which of them something already holds.

The stack tests (marker ``stack``, tests/test_readme.py) run the README's run command, which takes these
default ports; beside a running `make run` they skip (tests/conftest.py) instead of failing. Every other
test starts its processes on free ports of its own (tests/fleet.py ``free_port``, below the kernel's
ephemeral range).
"""

from __future__ import annotations

import errno
import json
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from meshforge.settings import field_default

REPO = Path(__file__).resolve().parent.parent
SERVICE_PORT_SETTINGS = (
    "orchestrator_port",
    "image_service_port",
    "flux_service_port",
    "reconstruction_service_port",
    "postprocess_service_port",
)


def default_ports() -> tuple[int, ...]:
    """Every port the Procfile's processes listen on: each service's default (meshforge.settings),
    Redis's (the Procfile's redis line) and the web UI's (ui/package.json's ``serve`` script)."""
    services = [int(field_default(name)) for name in SERVICE_PORT_SETTINGS]
    procfile = (REPO / "Procfile").read_text()
    redis = re.search(r"^redis:.*--port (\d+)", procfile, re.MULTILINE)
    serve = json.loads((REPO / "ui" / "package.json").read_text())["scripts"]["serve"]
    ui = re.search(r"--port (\d+)", serve)
    if redis is None or ui is None or "npm run serve --prefix ui" not in procfile:
        raise RuntimeError("the Procfile's redis or ui line changed: update tests/stack_ports.py")
    return tuple(sorted({*services, int(redis[1]), int(ui[1])}))


def listening_ports(ports: Iterable[int]) -> list[int]:
    """The ``ports`` (in the order given) on which a TCP socket listens, on any address, IPv4 or IPv6:
    a running stack. Read from the kernel's socket tables, /proc/net/tcp and tcp6."""
    listening: set[int] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():  # no IPv6
            continue
        for line in table.read_text().splitlines()[1:]:
            # sl local_address rem_address st …: the address is HEXIP:HEXPORT, state 0A is LISTEN
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN:
                listening.add(int(fields[1].rsplit(":", 1)[1], 16))
    return [port for port in ports if port in listening]


def blocked_ports(ports: Iterable[int]) -> list[int]:
    """The ``ports`` (in the order given) that a server could not bind on loopback now, IPv4 or IPv6
    (``localhost`` may be either): a listener, or a socket of a closed connection (TIME_WAIT) whose
    local port it is: a client's port, which the kernel picks from 32768-60999, the defaults' range."""
    return [port for port in ports if not _bindable(port)]


def why_unusable(ports: tuple[int, ...], wait: float = 75.0) -> str | None:
    """None when `make run` can take every one of ``ports``; otherwise why not, as a skip reason. A port
    held only by a closed connection frees itself within a minute (TIME_WAIT): for those this waits up
    to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        listening = listening_ports(ports)
        if listening:
            return (
                f"port(s) {_names(listening)} already listening (is a `make run` running?): the stack "
                f"tests run `make run` on the default ports {_names(ports)}; stop it to run them"
            )
        blocked = blocked_ports(ports)
        if not blocked:
            return None
        if time.monotonic() >= deadline:
            return (
                f"port(s) {_names(blocked)} could not be bound for {wait:.0f} s (held by sockets that are "
                f"not listening, e.g. closed connections): the stack tests need {_names(ports)} free"
            )
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


_LISTEN = "0A"


def _bindable(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host
            continue
        with sock:
            # As uvicorn and redis do: only a listener or a connection's own port stands in the way.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return False
                # EADDRNOTAVAIL and the like: no such address on this host, so nothing is bound there
    return True


def _names(ports: Iterable[int]) -> str:
    return ", ".join(str(port) for port in ports)
