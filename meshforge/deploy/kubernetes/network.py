"""Who reaches what: the Ingress (the public entry) and the NetworkPolicies that admit each workload's
callers only."""

from __future__ import annotations

import argparse
from typing import Any

from meshforge.deploy import prometheus
from meshforge.deploy.common import PORTS, UI_PORT
from meshforge.deploy.kubernetes.objects import commented, labels, metadata


def ingress(args: argparse.Namespace) -> list[dict[str, Any]]:
    def path(prefix: str, name: str, port: int, kind: str = "Prefix") -> dict[str, Any]:
        backend = {"service": {"name": name, "port": {"number": port}}}
        return {"path": prefix, "pathType": kind, "backend": backend}

    def document(name: str, note: str, paths: list[dict[str, Any]], body_size: str) -> dict[str, Any]:
        annotations = {"nginx.ingress.kubernetes.io/proxy-body-size": body_size, **shared}
        return commented(
            note,
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": metadata(name, annotations=annotations),
                "spec": {
                    "ingressClassName": args.ingress_class,
                    "rules": [{"host": args.host, "http": {"paths": paths}}],
                },
            },
        )

    # The same limits as the host nginx site (nginx/): 120 s status long-polls, streamed downloads, per
    # client address 10 requests a second with bursts of 40 (limit-rps x limit-burst-multiplier) and 32
    # connections. The annotations are ingress-nginx's; other controllers name them differently.
    # ingress-nginx answers a limit with 503 unless its ConfigMap sets limit-req-status-code: 429.
    shared = {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "180",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "180",
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
        "nginx.ingress.kubernetes.io/limit-rps": "10",
        "nginx.ingress.kubernetes.io/limit-burst-multiplier": "4",
        "nginx.ingress.kubernetes.io/limit-connections": "32",
    }
    api = PORTS["orchestrator"]
    return [
        document(
            "meshforge",
            "The public entry, as host nginx is on one server: / is the API, /3d-test/ the web UI. JSON "
            "bodies are small. /metrics goes to the UI's server, which answers 404: the orchestrator's "
            "metrics are for Prometheus inside the cluster, as host nginx keeps them off the internet.",
            [
                path("/3d-test/", "ui", UI_PORT),
                path("/metrics", "ui", UI_PORT, kind="Exact"),
                path("/", "orchestrator", api),
            ],
            "64k",
        ),
        document(
            "meshforge-upload",
            "POST /3d/upload alone takes large bodies: 8 images of 20 MiB plus multipart framing.",
            [path("/3d/upload", "orchestrator", api, kind="Exact")],
            "170m",
        ),
    ]


# Who may open connections to whom (the callers of each workload, by the name in its labels). Kubelet
# probes come from the node and are not pod traffic; most network plugins let them through. Prometheus
# scrapes each one's /metrics, on its HTTP port (a policy cannot tell paths apart; every path but /health
# and the orchestrator's API needs the token anyway) or, for the dispatcher, its metrics port alone.
CALLERS: dict[str, tuple[str, ...]] = {
    "redis": ("orchestrator", "dispatcher"),
    "image-service": ("orchestrator", "dispatcher", "prometheus"),  # the orchestrator only asks /health
    "flux": ("orchestrator", "image-service", "prometheus"),
    "reconstruction": ("orchestrator", "dispatcher", "prometheus"),
    "postprocess-service": ("orchestrator", "dispatcher", "prometheus"),
    # The UI's server passes /3d/ calls on; the ingress is admitted below.
    "orchestrator": ("ui", "prometheus"),
    "dispatcher": ("prometheus",),
}
PUBLIC = ("orchestrator", "ui")  # reached from the ingress controller's namespace


def network_policy(name: str, sources: list[dict[str, Any]], port: int) -> dict[str, Any]:
    rule = {"from": sources, "ports": [{"protocol": "TCP", "port": port}]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(f"{name}-ingress"),
        "spec": {"podSelector": {"matchLabels": labels(name)}, "policyTypes": ["Ingress"], "ingress": [rule]},
    }


def network_policies(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Deny every connection into the namespace's pods, then admit each workload's own callers only."""
    deny = commented(
        "No pod of the namespace takes connections, except as the policies after this one admit.",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata("default-deny-ingress"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    )
    ingress_controller = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": args.ingress_namespace}}
    }
    ports = {
        "redis": 6379,
        "flux": PORTS["flux-service"],
        "reconstruction": PORTS["reconstruction-service"],
        "ui": UI_PORT,
        "dispatcher": prometheus.DISPATCHER_METRICS_PORT,
    }
    policies: list[dict[str, Any]] = [deny]
    for name in [*CALLERS, "ui"]:
        sources: list[dict[str, Any]] = [
            {"podSelector": {"matchLabels": labels(caller)}} for caller in CALLERS.get(name, ())
        ]
        if name in PUBLIC:
            sources.append(ingress_controller)
        policies.append(network_policy(name, sources, ports.get(name) or PORTS[name]))
    return policies
