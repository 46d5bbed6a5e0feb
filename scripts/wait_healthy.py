"""Part of `make run`: wait until every service reports healthy, print the URLs, then stay up.

honcho stops the whole stack when any process exits, so this one exits only on failure.
"""

from __future__ import annotations

import signal
import sys
import time

import httpx

from meshforge.settings import OrchestratorSettings, load_settings

TIMEOUT_SECONDS = 120.0


def main() -> int:
    settings = load_settings(OrchestratorSettings)  # the only process it asks: the orchestrator
    api = f"http://localhost:{settings.orchestrator_port}"
    deadline = time.monotonic() + TIMEOUT_SECONDS
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            health = httpx.get(
                f"http://{settings.host}:{settings.orchestrator_port}/health", timeout=5
            ).json()
            if health.get("status") == "ok":
                print_ready(api, health)
                signal.pause()
                return 0
            last = f"orchestrator reports {health.get('status')}: {health.get('detail')}"
        except (httpx.HTTPError, ValueError) as exc:
            last = f"orchestrator not answering ({type(exc).__name__})"
        time.sleep(0.5)
    print(f"meshforge did not become healthy within {TIMEOUT_SECONDS:.0f} s: {last}", file=sys.stderr)
    return 1


def print_ready(api: str, health: dict) -> None:
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
