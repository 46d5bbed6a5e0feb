"""Run one fleet process as its own `python -m` would, with the benchmarks' stage backends registered.

    .venv/bin/python -m benchmarks.stage_process reconstruction-service --seconds 0.5
    .venv/bin/python -m benchmarks.stage_process dispatcher --profile dispatcher.prof

A stage service gets ``instant-benchmark`` and ``sleeping-benchmark`` (``--seconds`` per call) added to
its backend registry (benchmarks/stage_backends.py), then serves exactly as its ``__main__`` does; its
``MESHFORGE_*_BACKEND`` setting picks the backend. The orchestrator and the dispatcher run unchanged:
they are here so that ``--profile`` can run any process under cProfile (its main thread's CPU time),
written when it stops (SIGTERM).
"""

from __future__ import annotations

import argparse
import cProfile
import runpy
import signal
import sys
import time
from pathlib import Path

from benchmarks.stage_backends import SERVICES, install

# Each process's `python -m` module, run as __main__ exactly as `python -m` runs it.
MODULES = {
    "flux-service": "flux_service",
    "image-service": "image_service",
    "reconstruction-service": "reconstruction_service",
    "postprocess-service": "postprocess_service",
    "orchestrator": "orchestrator",
    "dispatcher": "orchestrator.dispatcher",
}


def run_as_main(module: str) -> None:
    sys.argv = [module]  # what the process would see as `python -m <module>`
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("process", choices=MODULES)
    parser.add_argument("--seconds", type=float, default=0.0, help="pause of sleeping-benchmark per call")
    parser.add_argument("--profile", type=Path, help="run under cProfile; stats written here at exit")
    args = parser.parse_args()
    if args.seconds < 0:
        parser.error("--seconds must be ≥ 0")
    if args.process in SERVICES:
        install(args.process, args.seconds)
    module = MODULES[args.process]
    if args.profile is None:
        run_as_main(module)
        return
    # uvicorn re-raises the SIGTERM it stopped on once it has shut down: exit through Python, not the
    # signal's default action, so that the stats are written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    profile = cProfile.Profile(time.thread_time)  # CPU time, so waiting in epoll costs nothing
    try:
        profile.runcall(run_as_main, module)  # the event loop runs in this thread: its coroutines are seen
    finally:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
