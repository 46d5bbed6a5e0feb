"""The Kubernetes objects every workload is made of: names and labels, pod templates (non-root, no
privilege), Deployments and StatefulSets, Services and probes."""

from __future__ import annotations

from typing import Any

from meshforge.deploy.yaml_text import Comment

NAMESPACE = "meshforge"
UID = 1000  # the meshforge user of the Python images and the node user of the UI image


def commented(text: str, document: dict[str, Any]) -> dict[str, Any]:
    """The document with a comment line above it in the YAML."""
    return {"_comment": Comment(text), **document}


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "meshforge"}


def metadata(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": labels(name), **extra}


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
