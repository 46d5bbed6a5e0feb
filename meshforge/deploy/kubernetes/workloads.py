"""The workloads: Redis, the Python services (one pod per GPU for the model stages), the UI, and the
shared data volume they mount."""

from __future__ import annotations

import argparse
from typing import Any

from meshforge.deploy import prometheus
from meshforge.deploy.common import DISPATCHER_COMMAND, PORTS, SHARED_FOLDERS, UI_PORT, version
from meshforge.deploy.compose.services import dispatcher_healthcheck, dispatcher_metrics_env
from meshforge.deploy.kubernetes.config import env_from, env_list, meshforge_env, port_env, secret_env
from meshforge.deploy.kubernetes.objects import (
    NAMESPACE,
    commented,
    container_security,
    metadata,
    pod,
    probes,
    service,
    workload,
)

REDIS_UID = 999  # the redis user of the redis image
DATA_CLAIM = "meshforge-data"
GPU = "nvidia.com/gpu"


def shared_mounts() -> list[dict[str, str]]:
    return [{"name": "data", "mountPath": f"/{name}", "subPath": name} for name in SHARED_FOLDERS]


def folders_init(image: str) -> dict[str, Any]:
    # The kubelet would create missing subPath folders itself, as root; make them as the service user.
    return {
        "name": "shared-folders",
        "image": image,
        "command": ["mkdir", "-p", *(f"/data/{name}" for name in SHARED_FOLDERS)],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "securityContext": container_security(),
    }


def meshforge_pod(
    name: str,
    image: str,
    env: dict[str, str],
    port: int | None,
    command: list[str] | None = None,
    probe: dict[str, Any] | None = None,
    gpu_nodes: dict[str, str] | None = None,
    metrics_port: int | None = None,
) -> dict[str, Any]:
    """A Python service's pod template: the shared folders, probes; one GPU when gpu_nodes is set;
    metrics_port: its /metrics where it has no HTTP port (the dispatcher)."""
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = command
    container["envFrom"] = env_from()
    container["env"] = meshforge_env({**(port_env(port) if port is not None else {}), **env})
    if port is not None:
        container["ports"] = [{"name": "http", "containerPort": port}]
    if metrics_port is not None:
        container["ports"] = [{"name": "metrics", "containerPort": metrics_port}]
    container.update(probe if probe is not None else probes(gpu=gpu_nodes is not None))
    if gpu_nodes is not None:
        # The NVIDIA device plugin gives the container one GPU and sets CUDA_VISIBLE_DEVICES itself.
        container["resources"] = {"limits": {GPU: 1}}
    container["volumeMounts"] = shared_mounts()
    container["securityContext"] = container_security()
    spec: dict[str, Any] = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}]}
    if gpu_nodes is not None:
        spec["nodeSelector"] = gpu_nodes
        spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    return pod(name, [container], init=folders_init(image), **spec)


def pod_urls(name: str, replicas: int, port: int, cluster_domain: str) -> str:
    host = f"{name}.{NAMESPACE}.svc.{cluster_domain}"
    return ",".join(f"http://{name}-{index}.{host}:{port}" for index in range(replicas))


def redis() -> list[dict[str, Any]]:
    ping = {"exec": {"command": ["redis-cli", "ping"]}}
    container = {
        "name": "redis",
        "image": "redis:7.4",
        # redis-cli (the probes) reads its password from REDISCLI_AUTH.
        "env": [
            secret_env("REDIS_PASSWORD", "MESHFORGE_REDIS_PASSWORD"),
            secret_env("REDISCLI_AUTH", "MESHFORGE_REDIS_PASSWORD"),
        ],
        # AOF with fsync every second: a crash loses at most one second of queue writes.
        "args": [
            "redis-server",
            *("--requirepass", "$(REDIS_PASSWORD)"),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--dir", "/data"),
        ],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "readinessProbe": {**ping, "periodSeconds": 10},
        "livenessProbe": {**ping, "periodSeconds": 15, "failureThreshold": 5},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "securityContext": container_security(),
    }
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}
    statefulset = workload(
        "StatefulSet",
        "redis",
        pod("redis", [container], uid=REDIS_UID),
        serviceName="redis",
        volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": claim}],
    )
    note = "Redis: the job queue and records, an append-only file on its own volume (the default class)."
    return [commented(note, service("redis", 6379, port_name="redis")), statefulset]


def ui(image: str, host: str) -> list[dict[str, Any]]:
    # The UI's server answers 403 to Host names it does not know, and the Ingress passes the public one on.
    env = {
        "MESHFORGE_API": f"http://orchestrator:{PORTS['orchestrator']}",
        "MESHFORGE_UI_ALLOWED_HOSTS": host,
    }
    container = {
        "name": "ui",
        "image": image,
        "envFrom": env_from(secret=False),
        "env": env_list(env),
        "ports": [{"name": "http", "containerPort": UI_PORT}],
        **probes("/3d-test/"),
        "securityContext": container_security(),
    }
    # The UI serves its own build and reads no shared files, so it mounts no data volume.
    return [workload("Deployment", "ui", pod("ui", [container])), service("ui", UI_PORT)]


def data_claim(args: argparse.Namespace) -> dict[str, Any]:
    """The one volume every Python pod mounts its shared folders from."""
    return commented(
        "models/ inputs/ outputs/ cache/ of every pod: subPaths of one ReadWriteMany volume (NFS, CephFS).",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata(DATA_CLAIM),
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": args.storage_class,
                "resources": {"requests": {"storage": args.data_size}},
            },
        },
    )


def http_stage(name: str, template: dict[str, Any]) -> list[dict[str, Any]]:
    """A stage served over HTTP by one pod (a Deployment, which may be scaled) behind its Service."""
    return [workload("Deployment", name, template), service(name, PORTS[name])]


def gpu_stage(name: str, replicas: int, template: dict[str, Any]) -> list[dict[str, Any]]:
    """A model stage: one pod per GPU, each named by the headless Service, so that the dispatcher's
    replica list names every pod."""
    port = PORTS[f"{name}-service"]
    # Parallel: every replica loads its model at once rather than one pod after another.
    statefulset = workload(
        "StatefulSet", name, template, replicas, serviceName=name, podManagementPolicy="Parallel"
    )
    note = f"{name}: one pod per GPU; the headless service names each pod ({name}-0.{name}...)."
    return [commented(note, service(name, port, headless=True)), statefulset]


def image(args: argparse.Namespace, name: str) -> str:
    """The image of a service: the registry prefix, its name, the project's version."""
    return f"{args.image_prefix}/{name}:{version()}"


def stages(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The Python services: the orchestrator, the dispatchers, image-service, one pod per GPU of flux and
    reconstruction, post-processing."""

    flux_urls = pod_urls("flux", args.flux_gpus, PORTS["flux-service"], args.cluster_domain)
    reconstruction_urls = pod_urls(
        "reconstruction", args.reconstruction_gpus, PORTS["reconstruction-service"], args.cluster_domain
    )
    replica_lists = {
        "MESHFORGE_IMAGE_SERVICE_URLS": f"http://image-service:{PORTS['image-service']}",
        "MESHFORGE_FLUX_SERVICE_URLS": flux_urls,
        "MESHFORGE_RECONSTRUCTION_SERVICE_URLS": reconstruction_urls,
        "MESHFORGE_POSTPROCESS_SERVICE_URLS": f"http://postprocess-service:{PORTS['postprocess-service']}",
    }
    key, _, value = args.gpu_node_selector.partition("=")
    gpu_nodes = {key: value}
    dispatcher_probe = {
        # No HTTP: alive while its lease key 3d:worker:<pod name>-... is in Redis (the compose check).
        "livenessProbe": {
            "exec": {"command": dispatcher_healthcheck()["test"][1:]},
            "initialDelaySeconds": 20,
            "periodSeconds": 15,
            "timeoutSeconds": 10,
            "failureThreshold": 5,
        }
    }
    orchestrator = image(args, "orchestrator")
    return [
        *http_stage(
            "orchestrator", meshforge_pod("orchestrator", orchestrator, replica_lists, PORTS["orchestrator"])
        ),
        commented(
            "Any number of dispatchers can share the Redis queue; two keep jobs moving while one restarts.",
            workload(
                "Deployment",
                "dispatcher",
                meshforge_pod(
                    "dispatcher",
                    orchestrator,
                    {**replica_lists, **dispatcher_metrics_env()},
                    None,
                    DISPATCHER_COMMAND,
                    dispatcher_probe,
                    metrics_port=prometheus.DISPATCHER_METRICS_PORT,
                ),
                replicas=2,
            ),
        ),
        *http_stage(
            "image-service",
            meshforge_pod(
                "image-service",
                image(args, "image-service"),
                {"MESHFORGE_FLUX_SERVICE_URLS": flux_urls},
                PORTS["image-service"],
            ),
        ),
        *gpu_stage(
            "flux",
            args.flux_gpus,
            meshforge_pod(
                "flux", image(args, "flux-service"), {}, PORTS["flux-service"], gpu_nodes=gpu_nodes
            ),
        ),
        *gpu_stage(
            "reconstruction",
            args.reconstruction_gpus,
            meshforge_pod(
                "reconstruction",
                image(args, "reconstruction-service"),
                {},
                PORTS["reconstruction-service"],
                gpu_nodes=gpu_nodes,
            ),
        ),
        *http_stage(
            "postprocess-service",
            meshforge_pod(
                "postprocess-service", image(args, "postprocess-service"), {}, PORTS["postprocess-service"]
            ),
        ),
    ]
