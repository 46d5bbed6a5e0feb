"""The command line of scripts/generate_kubernetes.py: its arguments, and the file it writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meshforge.deploy import prometheus
from meshforge.deploy.common import DOMAIN, ROOT, write_or_print
from meshforge.deploy.kubernetes.manifest import render

DESCRIPTION = "Write the Kubernetes manifests for meshforge spread over several GPU hosts."
OUTPUT = ROOT / "deploy" / "kubernetes" / "meshforge.yaml"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--flux-gpus", type=int, default=4, help="flux pods, one GPU each (default 4)")
    parser.add_argument("--reconstruction-gpus", type=int, default=4, help="reconstruction pods (default 4)")
    parser.add_argument(
        "--storage-class", default="nfs-client", help="a ReadWriteMany class (default nfs-client)"
    )
    parser.add_argument("--data-size", default="500Gi", help="size of the shared claim (default 500Gi)")
    parser.add_argument(
        "--prometheus-size",
        default="20Gi",
        help=f"size of Prometheus' claim, default class (default 20Gi; it keeps at most "
        f"{prometheus.RETENTION_SIZE})",
    )
    parser.add_argument("--image-prefix", default="meshforge", help="registry/repository of the images")
    parser.add_argument(
        "--gpu-node-selector",
        default="nvidia.com/gpu.present=true",
        help="label=value of the GPU nodes (default: the GPU operator's nvidia.com/gpu.present=true)",
    )
    parser.add_argument("--ingress-class", default="nginx", help="IngressClass name (default nginx)")
    parser.add_argument(
        "--ingress-namespace",
        default="ingress-nginx",
        help="namespace of the ingress controller, the only one admitted to the API and UI (ingress-nginx)",
    )
    parser.add_argument(
        "--host", default=DOMAIN, help=f"public host name, of the Ingress and the UI (default {DOMAIN})"
    )
    parser.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain")
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help="default deploy/kubernetes/meshforge.yaml"
    )
    parser.add_argument("--stdout", action="store_true", help="print instead of writing a file")
    args = parser.parse_args(argv)
    if args.flux_gpus < 1 or args.reconstruction_gpus < 1:
        parser.error("each stage needs at least one GPU pod")
    if "=" not in args.gpu_node_selector:
        parser.error("--gpu-node-selector takes label=value")
    return args


def generate(argv: list[str]) -> tuple[Path, str]:
    """The manifest text for these arguments, and where it goes."""
    args = parse(argv)
    return args.output, render(args, [a for a in argv if a != "--stdout"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return write_or_print(argv, *generate(argv))
