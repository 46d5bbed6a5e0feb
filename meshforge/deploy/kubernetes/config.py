"""Where the pods' settings come from: the Secret the operator creates, the defaults ConfigMap, the
operator's settings ConfigMap, and each pod's own environment (the layout)."""

from __future__ import annotations

from typing import Any

from meshforge.deploy.common import PORTS, PROFILE_DEFAULTS, port_variable
from meshforge.deploy.compose.services import common_environment
from meshforge.deploy.kubernetes.objects import commented, metadata
from meshforge.deploy.yaml_text import Comment

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


def env_list(env: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": key, "value": value} for key, value in env.items()]


def secret_env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}


def meshforge_env(env: dict[str, str]) -> list[dict[str, Any]]:
    """A Python service's environment: compose's, with the secrets taken from the Secret (by name too, so
    that a pod without them does not start, and the URL can expand the password listed before it)."""
    values = {**common_environment(), **env, "MESHFORGE_REDIS_URL": REDIS_URL}
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
    return {port_variable(target): str(port)}


def settings_configmaps() -> list[dict[str, Any]]:
    defaults = commented(
        "The GPU stages' backends, defaults that meshforge-settings overrides. Generated: do not edit.",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(DEFAULTS_CONFIGMAP),
            "data": dict(PROFILE_DEFAULTS["gpu"]),
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
