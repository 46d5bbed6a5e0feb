"""A stack whose image-service may fetch from loopback networks, for tests that serve images there.

The session fleet allows no loopback fetches (as production allows none), so a test that downloads from
its own HTTP server on loopback gets an orchestrator, a dispatcher and an image-service of its own,
all with ``MESHFORGE_OUTBOUND_ALLOWED_NETWORKS`` set, driving the fleet's other stage services.
"""

from __future__ import annotations

from tests.fleet import Fleet, Stack, free_port, start_stack


def start_fetching_stack(fleet: Fleet, name: str, db: int, allowed_networks: str) -> Stack:
    """Orchestrator + dispatcher on Redis database ``db`` and an image-service that may fetch from
    ``allowed_networks`` (comma-separated CIDRs). ``Stack.stop`` stops all three."""
    port = free_port()
    allowed = {"MESHFORGE_OUTBOUND_ALLOWED_NETWORKS": allowed_networks}
    image = fleet.start_service(
        f"{name}-image",
        "image_service",
        "MESHFORGE_IMAGE_SERVICE_PORT",
        MESHFORGE_IMAGE_SERVICE_PORT=str(port),
        **allowed,
    )
    try:
        stack = start_stack(
            fleet, name, db, MESHFORGE_IMAGE_SERVICE_URLS=f"http://127.0.0.1:{port}", **allowed
        )
    except BaseException:
        image.stop()
        fleet.processes.remove(image)
        raise
    stack.processes.insert(0, image)  # stopped last, after the dispatcher that calls it
    try:
        stack.start_dispatcher()
    except BaseException:
        stack.stop()
        raise
    return stack
