"""Part of `make run`: wait until every service reports healthy, print the URLs, then stay up.

honcho stops the whole stack when any process exits, so this one exits only on failure.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import httpx

from meshforge.settings import OrchestratorSettings, load_settings

# Model backends load their weights at start-up, which can take minutes (FLUX.1 from a cold disk): by
# default this waits as long as the stack runs (honcho stops everything if a service exits), saying
# every PROGRESS_SECONDS what it waits for. MESHFORGE_READY_TIMEOUT_SECONDS > 0 sets a limit.
PROGRESS_SECONDS = 15.0


def main() -> int:
    settings = load_settings(OrchestratorSettings)  # the only process it asks: the orchestrator
    api = f"http://localhost:{settings.orchestrator_port}"
    limit = float(os.environ.get("MESHFORGE_READY_TIMEOUT_SECONDS", "0") or 0)
    started = time.monotonic()
    said = started
    last = "no answer yet"
    while limit <= 0 or time.monotonic() - started < limit:
        try:
            health = httpx.get(
                f"http://{settings.host}:{settings.orchestrator_port}/health", timeout=5
            ).json()
            if health.get("status") == "ok":
                print_ready(api, health)
                signal.pause()
                return 0
            last = waiting_for(health)
        except (httpx.HTTPError, ValueError) as exc:
            last = f"the orchestrator is not answering yet ({type(exc).__name__})"
        if time.monotonic() - said >= PROGRESS_SECONDS:
            said = time.monotonic()
            print(f"still starting after {said - started:.0f} s: {last}", flush=True)
        time.sleep(0.5)
    print(f"meshforge did not become healthy within {limit:.0f} s: {last}", file=sys.stderr)
    return 1


def waiting_for(health: dict[str, Any]) -> str:
    """Which replicas are not healthy yet, from the orchestrator's /health."""
    stages = health.get("detail", {}).get("stages", {})
    pending = [
        f"{stage} {url} ({answer.get('status', 'no answer')})"
        for stage, replicas in stages.items()
        for url, answer in replicas.items()
        if answer.get("status") != "ok"
    ]
    if not pending:
        redis = health.get("detail", {}).get("redis")
        return f"the orchestrator reports {health.get('status')} (Redis: {redis})"
    return "waiting for " + ", ".join(pending)


def print_ready(api: str, health: dict[str, Any]) -> None:
    stages = health.get("detail", {}).get("stages", {})
    lines = [
        "",
        "meshforge is up.",
        f"  API       {api}   (OpenAPI docs: {api}/docs)",
        "  UI        http://localhost:38101/3d-test/",
        f"  Try       curl -X POST {api}/3d/generate -H 'Content-Type: application/json' "
        """-d '{"prompt": "a red cube", "output_format": "glb"}'""",
    ]
    for stage, replicas in stages.items():
        for url, answer in replicas.items():
            lines.append(f"  {stage:<23} {url}  backend={answer.get('backend')}")
    lines.append("Press Ctrl-C to stop everything.")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
