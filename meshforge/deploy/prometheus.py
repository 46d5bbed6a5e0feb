"""The Prometheus that scrapes a meshforge fleet: its scrape configuration, flags and image, shared by
meshforge.deploy.compose (targets: the compose services, found by DNS) and meshforge.deploy.kubernetes
(targets: the namespace's pods, found through the Kubernetes API).

The files it feeds are generated, like the deployments: deploy/prometheus/prometheus.yml
(docker-compose.yml), deploy/prometheus/prometheus.cpu.yml (docker-compose.cpu.yml) and the ConfigMap
`prometheus-config` in deploy/kubernetes/meshforge.yaml. Standard library only, like the generators.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

# Prometheus 3 is the first with `http_headers` in a scrape config (the header below, read from a file).
# 3.5 is a long-term-support release.
IMAGE = "prom/prometheus:v3.5.0"
PORT = 9090
UID = 65534  # nobody: the user the prom/prometheus image runs as
RETENTION_TIME = "15d"
# A bound on disk use too: Prometheus drops the oldest blocks first once either limit is passed.
RETENTION_SIZE = "10GB"
DATA_DIR = "/prometheus"
# meshforge/internal_token.py's INTERNAL_TOKEN_HEADER (tests/test_compose.py checks they agree). Every
# /metrics needs it while MESHFORGE_INTERNAL_TOKEN is set, as the deployments always set it.
TOKEN_HEADER = "X-Meshforge-Internal-Token"
# The token's value alone, in a file Prometheus reads afresh at each scrape: it never appears in the
# configuration, whose text Prometheus shows on its status page.
TOKEN_DIR = "/etc/prometheus/secrets"
TOKEN_FILE = f"{TOKEN_DIR}/meshforge-internal-token"
# The dispatcher has no HTTP API; its metrics server listens on MESHFORGE_DISPATCHER_METRICS_PORT (this is
# its default, which the deployments pin).
DISPATCHER_METRICS_PORT = 38150
SCRAPE_INTERVAL = "15s"
SCRAPE_TIMEOUT = "10s"


@dataclass(frozen=True)
class Job:
    """One scrape job: a meshforge process (the job label is its name in meshforge.settings'
    PROCESS_SETTINGS, the dashboard's `service`), where its replicas are and the port of its /metrics."""

    name: str
    port: int
    names: list[str]  # compose: the service names to resolve; Kubernetes: the workload's name label


def flags(config_file: str) -> list[str]:
    return [
        f"--config.file={config_file}",
        f"--storage.tsdb.path={DATA_DIR}",
        f"--storage.tsdb.retention.time={RETENTION_TIME}",
        f"--storage.tsdb.retention.size={RETENTION_SIZE}",
    ]


def token_headers() -> dict[str, Any]:
    return {TOKEN_HEADER: {"files": [TOKEN_FILE]}}


def config(scrape_configs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_TIMEOUT},
        "scrape_configs": scrape_configs,
    }


def compose_config(jobs: list[Job]) -> dict[str, Any]:
    """Targets by DNS on the compose network: one per container of each service name, so a scaled service
    (`--scale dispatcher=3`) is one target per container. A name that does not resolve (a container that
    is not running) has no target until it does: watch `up` and absent series, not only `up == 0`."""
    return config(
        [
            {
                "job_name": job.name,
                "http_headers": token_headers(),
                "dns_sd_configs": [{"names": job.names, "type": "A", "port": job.port}],
                # The service name (flux-2) beside the container's address, which stays the instance.
                "relabel_configs": [{"source_labels": ["__meta_dns_name"], "target_label": "replica"}],
            }
            for job in jobs
        ]
    )


def kubernetes_config(jobs: list[Job], namespace: str, name_label: str) -> dict[str, Any]:
    """Targets through the Kubernetes API: every running pod of each workload (selected by its name label),
    at the container port of its /metrics. Each pod of the flux and reconstruction StatefulSets, and each
    dispatcher, is a target of its own, named by its pod (flux-2) in the `replica` label."""
    meta_label = "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in name_label)
    scrape_configs = []
    for job in jobs:
        (workload,) = job.names
        scrape_configs.append(
            {
                "job_name": job.name,
                "http_headers": token_headers(),
                "kubernetes_sd_configs": [
                    {
                        "role": "pod",
                        "namespaces": {"names": [namespace]},
                        # Filtered by the API server: Prometheus watches only this workload's pods.
                        "selectors": [{"role": "pod", "label": f"{name_label}={workload}"}],
                    }
                ],
                "relabel_configs": [
                    # Selected again here, should the selector be dropped; then one target per pod, at
                    # the metrics port (a pod gets a target for each port it declares).
                    {"source_labels": [meta_label], "regex": workload, "action": "keep"},
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                        "regex": str(job.port),
                        "action": "keep",
                    },
                    # A pod that is pending or gone has no metrics to give.
                    {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "replica"},
                ],
            }
        )
    return config(scrape_configs)


KUBERNETES_CONFIG_DIR = "/etc/prometheus/config"  # the ConfigMap, whole: a subPath mount would not update
# What kubernetes_sd_configs (role pod, one namespace) needs of the API: the pods there, and their changes.
KUBERNETES_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def kubernetes_container() -> dict[str, Any]:
    """The Prometheus container of the Kubernetes Deployment; its volumes are kubernetes_volumes()."""

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        }

    return {
        "name": "prometheus",
        "image": IMAGE,
        "args": flags(f"{KUBERNETES_CONFIG_DIR}/prometheus.yml"),
        "ports": [{"name": "http", "containerPort": PORT}],
        # /-/ready answers 503 while the TSDB replays its write-ahead log (long after a crash, on a large
        # volume); /-/healthy answers as soon as the process serves, so a long replay is not a restart.
        "readinessProbe": probe("/-/ready", 10, 3),
        "livenessProbe": probe("/-/healthy", 15, 5),
        "volumeMounts": [
            {"name": "config", "mountPath": KUBERNETES_CONFIG_DIR, "readOnly": True},
            {"name": "internal-token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
        ],
    }


def kubernetes_volumes(configmap: str, secret: str, claim: str) -> list[dict[str, Any]]:
    """The configuration, the token (the Secret's MESHFORGE_INTERNAL_TOKEN key alone, as the file the
    configuration names; readable by the pod's group, fsGroup) and the data claim."""
    token = {"key": "MESHFORGE_INTERNAL_TOKEN", "path": PurePosixPath(TOKEN_FILE).name}
    return [
        {"name": "config", "configMap": {"name": configmap}},
        {"name": "internal-token", "secret": {"secretName": secret, "items": [token], "defaultMode": 0o440}},
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
    ]


COMPOSE_CONFIG = "/etc/prometheus/prometheus.yml"  # where the image's Prometheus looks by default


def compose_service(config_file: str, token: str) -> dict[str, Any]:
    """The `prometheus` compose service: the scrape configuration `config_file` (relative to the compose
    file) mounted read-only, its data in the named volume prometheus-data, its UI and API on host loopback.

    `token` is the compose reference to MESHFORGE_INTERNAL_TOKEN (from .env, as for every service).
    Compose secrets from a variable (`secrets: x: environment:`) are too new for docker-compose 1.29, so a
    shell before Prometheus writes the token, alone, to a file on a tmpfs (memory only, never in the data
    volume) and drops the variable; Prometheus reads the file at each scrape. `$$` is a literal `$` for
    compose."""
    script = (
        f'umask 077 && printf "%s" "$$MESHFORGE_INTERNAL_TOKEN" > {TOKEN_FILE} && '
        'unset MESHFORGE_INTERNAL_TOKEN && exec /bin/prometheus "$$@"'
    )
    return {
        "image": IMAGE,
        # sh -c SCRIPT NAME ARGS...: the flags below become "$@" of the script.
        "entrypoint": ["/bin/sh", "-c", script, "prometheus"],
        "command": flags(COMPOSE_CONFIG),
        "restart": "unless-stopped",
        "environment": {"MESHFORGE_INTERNAL_TOKEN": token},
        "volumes": [f"./{config_file}:{COMPOSE_CONFIG}:ro", f"prometheus-data:{DATA_DIR}"],
        # Docker's default tmpfs mode (1777) lets the image's user write there; the file itself is 0600.
        "tmpfs": [TOKEN_DIR],
        # Loopback only: the UI and API have no authentication. Reach them with an ssh tunnel.
        "ports": [f"127.0.0.1:{PORT}:{PORT}"],
        "healthcheck": {
            # The image is busybox-based: wget, no curl. /-/ready answers 503 until the TSDB is open.
            "test": ["CMD", "wget", "-q", "--spider", f"http://127.0.0.1:{PORT}/-/ready"],
            "interval": "15s",
            "timeout": "10s",
            "retries": 5,
            "start_period": "30s",
        },
    }


def compose_file_for(compose_file: str) -> str:
    """The scrape configuration a compose file mounts, relative to its folder: docker-compose.yml ->
    deploy/prometheus/prometheus.yml, docker-compose.cpu.yml -> prometheus.cpu.yml, my-stack.yml ->
    prometheus.my-stack.yml. One per compose file, since each has its own replicas."""
    stem = PurePosixPath(compose_file).name.removesuffix(".yml").removesuffix(".yaml")
    suffix = stem.removeprefix("docker-compose").lstrip(".-_")
    return f"deploy/prometheus/prometheus{'.' + suffix if suffix else ''}.yml"
