"""The generator's arguments, and the layout they choose: which host GPU each replica reserves."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from meshforge.deploy.common import ROOT

DESCRIPTION = "Write the production docker-compose file for a server with N GPUs (or the CPU-only profile)."
# Compose paths of the profiles that are committed, keyed by the generator arguments that make them.
COMMITTED = {
    "docker-compose.yml": ["--gpus", "8"],
    "docker-compose.cpu.yml": ["--cpu"],
}


@dataclass
class Layout:
    """Which host GPU each replica reserves (None: no reservation, the CPU profile)."""

    flux_devices: list[int | None]
    reconstruction_devices: list[int | None]
    cpu: bool
    gpus: int

    @property
    def profile(self) -> str:
        return "cpu" if self.cpu else "gpu"

    @property
    def flux(self) -> list[str]:
        return [f"flux-{i}" for i in range(len(self.flux_devices))]

    @property
    def reconstruction(self) -> list[str]:
        return [f"reconstruction-{i}" for i in range(len(self.reconstruction_devices))]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs on the server (default 8)")
    parser.add_argument("--flux-gpus", type=int, help="GPUs 0..K-1 run flux-service (default: half)")
    parser.add_argument("--cpu", action="store_true", help="offline backends, no GPU reservations")
    parser.add_argument("--output", type=Path, help="default docker-compose.yml (docker-compose.cpu.yml)")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing a file")
    args = parser.parse_args(argv)
    if args.gpus < 1 and not args.cpu:
        parser.error("--gpus must be at least 1")
    if args.flux_gpus is None:
        # Half each; with one GPU both stages need a replica, so they share it.
        args.flux_gpus = max(1, args.gpus // 2) if args.gpus > 1 else 1
    if args.gpus > 1 and not 1 <= args.flux_gpus < args.gpus:
        parser.error("--flux-gpus must leave at least one GPU to each stage")
    return args


def layout_for(args: argparse.Namespace) -> Layout:
    if args.cpu:
        # One replica of each stage, as in `make run`.
        return Layout([None], [None], cpu=True, gpus=0)
    if args.gpus == 1:
        # Both stages need a replica, so on one GPU they share it (and its memory).
        return Layout([0], [0], cpu=False, gpus=1)
    flux: list[int | None] = list(range(args.flux_gpus))
    reconstruction: list[int | None] = list(range(args.flux_gpus, args.gpus))
    return Layout(flux, reconstruction, cpu=False, gpus=args.gpus)


def output_path(args: argparse.Namespace) -> Path:
    chosen: Path | None = args.output
    return chosen or ROOT / ("docker-compose.cpu.yml" if args.cpu else "docker-compose.yml")
