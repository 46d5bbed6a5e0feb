#!/usr/bin/env python3
"""Write the Kubernetes manifests for meshforge spread over several GPU hosts.

    python scripts/generate_kubernetes.py                           # -> deploy/kubernetes/meshforge.yaml
    python scripts/generate_kubernetes.py --flux-gpus 2 --reconstruction-gpus 6 --storage-class cephfs
    kubectl apply -f deploy/kubernetes/

The manifests are generated, never edited by hand: tests/test_kubernetes.py checks that the committed
file equals what this script produces now, and validates it with kubernetes-validate. The services,
ports, environment and YAML writer are those of scripts/generate_compose.py, so both deployments stay
the same stack. See docs/deployment.md ("Kubernetes").
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_compose_generator() -> ModuleType:
    """scripts/generate_compose.py, by file path: scripts/ is not a package and sys.path stays as it is."""
    if "generate_compose" in sys.modules:
        return sys.modules["generate_compose"]
    spec = importlib.util.spec_from_file_location(
        "generate_compose", Path(__file__).with_name("generate_compose.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_compose"] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


compose = _load_compose_generator()
prometheus = compose.prometheus  # scripts/prometheus_config.py, which compose loaded
ROOT: Path = compose.ROOT
PORTS: dict[str, int] = compose.PORTS
SHARED_FOLDERS: tuple[str, ...] = compose.SHARED_FOLDERS
Comment = compose.Comment

NAMESPACE = "meshforge"
OUTPUT = ROOT / "deploy" / "kubernetes" / "meshforge.yaml"
DOMAIN = "elohim-bitch-gpu.insanelabs.org"
UI_PORT = 38101
UID = 1000  # the meshforge user of the Python images and the node user of the UI image
REDIS_UID = 999  # the redis user of the redis image
DATA_CLAIM = "meshforge-data"
GPU = "nvidia.com/gpu"
# The fleet's secrets live in a Secret the operator creates (never in this file; docs/deployment.md). Its
# keys are the variables' names, so that every meshforge pod takes it whole (envFrom), with any other
# secret setting the operator adds; `--from-env-file=.env` (Compose's secrets file) makes the same Secret.
#   kubectl -n meshforge create secret generic meshforge-secrets \
#     --from-literal=MESHFORGE_INTERNAL_TOKEN=$(openssl rand -hex 32) \
#     --from-literal=MESHFORGE_REDIS_PASSWORD=$(openssl rand -hex 32)
SECRET = "meshforge-secrets"
# The operator's settings (any MESHFORGE_* variable, as in meshforge.env), created empty here and filled
# by the operator: this file lists none of its keys, so re-applying it leaves them alone. Every pod takes
# it after meshforge-defaults (the backends of the GPU stages, which it therefore overrides); a pod's own
# `env` (the layout) wins over both.
SETTINGS_CONFIGMAP = "meshforge-settings"
DEFAULTS_CONFIGMAP = "meshforge-defaults"
# Kubernetes expands $(VAR) from variables listed before it: the password is listed first.
REDIS_URL = "redis://:$(MESHFORGE_REDIS_PASSWORD)@redis:6379/0"


def commented(text: str, document: dict[str, Any]) -> dict[str, Any]:
    """The document with a comment line above it in the YAML."""
    return {"_comment": Comment(text), **document}


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "meshforge"}


def metadata(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": labels(name), **extra}


def env_list(env: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": key, "value": value} for key, value in env.items()]


def secret_env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def meshforge_env(env: dict[str, str]) -> list[dict[str, Any]]:
    """A Python service's environment: compose's, with the secrets taken from the Secret (by name too, so
    that a pod without them does not start, and the URL can expand the password listed before it)."""
    values = {**compose.common_environment(), **env, "MESHFORGE_REDIS_URL": REDIS_URL}
    del values["MESHFORGE_INTERNAL_TOKEN"]  # compose's ${...} reference; here it comes from the Secret
    return [
        secret_env("MESHFORGE_REDIS_PASSWORD", "MESHFORGE_REDIS_PASSWORD"),
        secret_env("MESHFORGE_INTERNAL_TOKEN", "MESHFORGE_INTERNAL_TOKEN"),
        *env_list(values),
    ]


def env_from(secret: bool = True) -> list[dict[str, Any]]:
    """The settings every pod takes whole: the defaults, the operator's settings (which win), and the
    Secret (meshforge pods only; the UI gets no secret)."""
    sources: list[dict[str, Any]] = [
        {"configMapRef": {"name": DEFAULTS_CONFIGMAP}},
        {"configMapRef": {"name": SETTINGS_CONFIGMAP}},
    ]
    if secret:
        sources.append({"secretRef": {"name": SECRET}})
    return sources


def port_env(port: int) -> dict[str, str]:
    """The setting of the service listening on ``port``, pinned as in the compose files."""
    (target,) = [name for name, number in PORTS.items() if number == port]
    return {compose.port_variable(target): str(port)}


def settings_configmaps() -> list[dict[str, Any]]:
    defaults = commented(
        "The GPU stages' backends, defaults that meshforge-settings overrides. Generated: do not edit.",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(DEFAULTS_CONFIGMAP),
            "data": dict(compose.PROFILE_DEFAULTS["gpu"]),
        },
    )
    settings = commented(
        "Your settings, any MESHFORGE_* variable as in meshforge.env: created empty, filled with kubectl",
        {
            "_more": Comment(
                "replace (docs/deployment.md, Kubernetes). No key is listed here: re-applying keeps yours."
            ),
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(SETTINGS_CONFIGMAP),
            "data": {},
        },
    )
    return [defaults, settings]


def http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def probes(path: str = "/health", gpu: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if gpu:
        # Loading FLUX.1 or TripoSR weights takes minutes: up to 10 before liveness starts counting.
        found["startupProbe"] = http_probe(path, 10, 60)
    found["readinessProbe"] = http_probe(path, 10, 3)
    found["livenessProbe"] = http_probe(path, 15, 5)
    return found


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        # A recursive chown of the model weights at every start would take minutes; only fix the root.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


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


def pod(
    name: str,
    containers: list[dict[str, Any]],
    uid: int = UID,
    init: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A pod template: non-root as `uid`, no Docker-link style *_PORT variables in the environment."""
    body: dict[str, Any] = {"enableServiceLinks": False, "securityContext": pod_security(uid)}
    if init is not None:
        body["initContainers"] = [init]
    return {"metadata": {"labels": labels(name)}, "spec": {**body, "containers": containers, **spec}}


def workload(
    kind: str, name: str, template: dict[str, Any], replicas: int = 1, **spec: Any
) -> dict[str, Any]:
    body = {**spec, "replicas": replicas, "selector": {"matchLabels": labels(name)}, "template": template}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata(name), "spec": body}


def service(name: str, port: int, port_name: str = "http", headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": labels(name),
        "ports": [{"name": port_name, "port": port, "targetPort": port}],
    }
    if headless:
        # One DNS name per pod (flux-0.flux...), kept while a pod is not ready: the dispatcher tracks
        # replica health itself and should get "connection refused", not "unknown host".
        spec = {"clusterIP": "None", "publishNotReadyAddresses": True, **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(name), "spec": spec}


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
            "bodies are small.",
            [path("/3d-test/", "ui", UI_PORT), path("/", "orchestrator", api)],
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


# Each scrape job (the process, as in the compose files and the dashboard) and its workload here.
SCRAPED = {
    "orchestrator": "orchestrator",
    "dispatcher": "dispatcher",
    "image-service": "image-service",
    "flux-service": "flux",
    "reconstruction-service": "reconstruction",
    "postprocess-service": "postprocess-service",
}
PROMETHEUS = "prometheus"
PROMETHEUS_CONFIGMAP = "prometheus-config"
PROMETHEUS_CLAIM = "prometheus-data"


def prometheus_text() -> str:
    """The scrape configuration of the cluster's Prometheus: every pod of each workload, found through the
    Kubernetes API (StatefulSet pods and the dispatchers one target each), with the fleet's token."""
    ports = {**PORTS, "dispatcher": prometheus.DISPATCHER_METRICS_PORT}
    jobs = [prometheus.Job(job, ports[job], [workload]) for job, workload in SCRAPED.items()]
    lines = [
        "# Generated by scripts/generate_kubernetes.py. Do not edit: regenerate. See docs/operations.md.",
        f"# The token: the key MESHFORGE_INTERNAL_TOKEN of the Secret {SECRET}, mounted as the file below.",
    ]
    config = prometheus.kubernetes_config(jobs, NAMESPACE, "app.kubernetes.io/name")
    return "\n".join(lines + compose.emit(config, 0)) + "\n"


def prometheus_documents(args: argparse.Namespace) -> list[dict[str, Any]]:
    text = prometheus_text()
    configmap = commented(
        "Prometheus' scrape configuration, made by the generator like the rest: do not edit.",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(PROMETHEUS_CONFIGMAP),
            "data": {"prometheus.yml": compose.Block(text)},
        },
    )
    rbac = "rbac.authorization.k8s.io"
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(PROMETHEUS)}
    role = {
        "apiVersion": f"{rbac}/v1",
        "kind": "Role",
        "metadata": metadata(PROMETHEUS),
        "rules": prometheus.KUBERNETES_RULES,
    }
    binding = {
        "apiVersion": f"{rbac}/v1",
        "kind": "RoleBinding",
        "metadata": metadata(PROMETHEUS),
        "roleRef": {"apiGroup": rbac, "kind": "Role", "name": PROMETHEUS},
        "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": NAMESPACE}],
    }
    claim = commented(
        "Prometheus' TSDB: a claim, not an emptyDir, so that the retention survives a restart or a move.",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata(PROMETHEUS_CLAIM),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": args.prometheus_size}},
            },
        },
    )
    container = {**prometheus.kubernetes_container(), "securityContext": container_security()}
    volumes = prometheus.kubernetes_volumes(PROMETHEUS_CONFIGMAP, SECRET, PROMETHEUS_CLAIM)
    template = pod(
        PROMETHEUS, [container], uid=prometheus.UID, serviceAccountName=PROMETHEUS, volumes=volumes
    )
    # Prometheus reads its configuration at start: a changed one (regenerated, applied) rolls the pod.
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    template["metadata"]["annotations"] = {"meshforge/prometheus-config-sha256": digest}
    deployment = commented(
        "One Prometheus; Recreate: the old pod lets go of the volume and TSDB lock before a new one starts.",
        workload("Deployment", PROMETHEUS, template, strategy={"type": "Recreate"}),
    )
    return [configmap, account, role, binding, claim, deployment, service(PROMETHEUS, prometheus.PORT)]


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


def documents(args: argparse.Namespace) -> list[dict[str, Any]]:
    tag = compose.version()

    def image(name: str) -> str:
        return f"{args.image_prefix}/{name}:{tag}"

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
            "exec": {"command": compose.dispatcher_healthcheck()["test"][1:]},
            "initialDelaySeconds": 20,
            "periodSeconds": 15,
            "timeoutSeconds": 10,
            "failureThreshold": 5,
        }
    }
    data_claim = commented(
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

    def http_stage(name: str, pod: dict[str, Any]) -> list[dict[str, Any]]:
        return [workload("Deployment", name, pod), service(name, PORTS[name])]

    def gpu_stage(name: str, replicas: int, pod: dict[str, Any]) -> list[dict[str, Any]]:
        port = PORTS[f"{name}-service"]
        # Parallel: every replica loads its model at once rather than one pod after another.
        statefulset = workload(
            "StatefulSet", name, pod, replicas, serviceName=name, podManagementPolicy="Parallel"
        )
        note = f"{name}: one pod per GPU; the headless service names each pod ({name}-0.{name}...)."
        return [commented(note, service(name, port, headless=True)), statefulset]

    orchestrator = image("orchestrator")
    dispatcher_command = ["python", "-m", "orchestrator.dispatcher"]
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": labels(NAMESPACE)},
        },
        data_claim,
        *settings_configmaps(),
        *redis(),
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
                    {**replica_lists, **compose.dispatcher_metrics_env()},
                    None,
                    dispatcher_command,
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
                image("image-service"),
                {"MESHFORGE_FLUX_SERVICE_URLS": flux_urls},
                PORTS["image-service"],
            ),
        ),
        *gpu_stage(
            "flux",
            args.flux_gpus,
            meshforge_pod("flux", image("flux-service"), {}, PORTS["flux-service"], gpu_nodes=gpu_nodes),
        ),
        *gpu_stage(
            "reconstruction",
            args.reconstruction_gpus,
            meshforge_pod(
                "reconstruction",
                image("reconstruction-service"),
                {},
                PORTS["reconstruction-service"],
                gpu_nodes=gpu_nodes,
            ),
        ),
        *http_stage(
            "postprocess-service",
            meshforge_pod(
                "postprocess-service", image("postprocess-service"), {}, PORTS["postprocess-service"]
            ),
        ),
        *ui(image("ui"), args.host),
        *ingress(args),
        *prometheus_documents(args),
        *network_policies(args),
    ]


def header(args: argparse.Namespace, argv: list[str]) -> list[str]:
    return [
        "# Generated by "
        + " ".join(["scripts/generate_kubernetes.py", *argv])
        + ". Do not edit: regenerate.",
        "# See docs/deployment.md (Kubernetes). Apply with: kubectl apply -f deploy/kubernetes/",
        f"# {args.flux_gpus} flux and {args.reconstruction_gpus} reconstruction pods, one GPU each, on nodes "
        f"labelled {args.gpu_node_selector}.",
        f"# Shared folders: the ReadWriteMany claim {DATA_CLAIM} (storage class {args.storage_class}).",
        "# The GPU backends load their weights from /models: fetch them into the claim first.",
        f"# Pods start once the Secret {SECRET} exists (keys MESHFORGE_INTERNAL_TOKEN and",
        "# MESHFORGE_REDIS_PASSWORD): it is not in this file; docs/deployment.md (Kubernetes) shows how to",
        f"# create it. Your settings go in the ConfigMap {SETTINGS_CONFIGMAP} (created empty here), which",
        f"# overrides {DEFAULTS_CONFIGMAP}.",
        f"# NetworkPolicies admit only each workload's callers, and the ingress from namespace "
        f"{args.ingress_namespace}.",
        "# Prometheus scrapes every pod; reach it with kubectl -n meshforge port-forward svc/prometheus "
        f"{prometheus.PORT}.",
    ]


def render(args: argparse.Namespace, argv: list[str]) -> str:
    lines = header(args, argv)
    for document in documents(args):
        lines.append("---")
        lines.extend(compose.emit(document, 0))
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
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
    return compose.write_or_print(argv, *generate(argv))


if __name__ == "__main__":
    raise SystemExit(main())
