"""One compose service: its image and build, environment, shared folders, health check and GPU."""

from __future__ import annotations

from typing import Any

from meshforge.deploy import prometheus
from meshforge.deploy.common import PORTS, SECRETS, SHARED_FOLDERS, UI_PORT, port_variable, version

# The five Python images come from the one Dockerfile at the repository root: the build target (a final
# stage there, named after the service) sets the port and the command; RUNTIME picks the runtime stage
# (python; torch: BASE_IMAGE with torch from the TORCH_CUDA wheel index; blender: headless Blender) and
# EXTRA the pyproject extra it installs.
IMAGES = {
    "orchestrator": {"RUNTIME": "python", "EXTRA": "orchestrator"},
    "image-service": {"RUNTIME": "python", "EXTRA": "image"},
    "flux-service": {"RUNTIME": "torch", "EXTRA": "flux"},
    "reconstruction-service": {"RUNTIME": "torch", "EXTRA": "reconstruction"},
    "postprocess-service": {"RUNTIME": "blender", "EXTRA": "postprocess"},
}


def secret(name: str) -> str:
    """The compose reference to a secret: from the shell or the project's .env file, never from a
    committed file. `docker compose` stops, naming the variable, while one is unset or empty
    (docs/deployment.md)."""
    assert name in SECRETS
    return f"${{{name}:?set it in .env (openssl rand -hex 32), see docs/deployment.md}}"


REDIS_PASSWORD = secret("MESHFORGE_REDIS_PASSWORD")
# The password in the URL: hex (openssl rand -hex 32) needs no URL escaping.
REDIS_URL = f"redis://:{REDIS_PASSWORD}@redis:6379/0"


def urls(names: list[str], port: int) -> str:
    return ",".join(f"http://{name}:{port}" for name in names)


def http_healthcheck(port: int, start_period: str) -> dict[str, Any]:
    # Slim images have no curl; urlopen raises (exit 1) on refusal, timeout or a non-2xx answer.
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=5)"
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": "15s",
        "timeout": "10s",
        "retries": 5,
        "start_period": start_period,
    }


def dispatcher_healthcheck() -> dict[str, Any]:
    # The dispatcher serves no HTTP. It is healthy while its lease key in Redis is alive; its worker id
    # starts with the hostname, which in a container is the container's own.
    probe = (
        "import os, socket, redis; "
        "r = redis.Redis.from_url(os.environ['MESHFORGE_REDIS_URL']); "
        "raise SystemExit(0 if any(r.scan_iter(match='3d:worker:' + socket.gethostname() + '-*')) else 1)"
    )
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": "15s",
        "timeout": "10s",
        "retries": 5,
        "start_period": "20s",
    }


def common_environment() -> dict[str, str]:
    env = {
        "MESHFORGE_HOST": "0.0.0.0",
        "MESHFORGE_REDIS_URL": REDIS_URL,
        # Every service: the stage services demand it, the orchestrator, dispatcher and image-service send it.
        "MESHFORGE_INTERNAL_TOKEN": secret("MESHFORGE_INTERNAL_TOKEN"),
    }
    env.update({f"MESHFORGE_{name.upper()}_DIR": f"/{name}" for name in SHARED_FOLDERS})
    return env


def dispatcher_metrics_env() -> dict[str, str]:
    return {"MESHFORGE_DISPATCHER_METRICS_PORT": str(prometheus.DISPATCHER_METRICS_PORT)}


def app_service(
    *,
    target: str,
    tag: str,
    command: list[str] | None,
    environment: dict[str, str],
    depends_on: list[str],
    healthcheck: dict[str, Any],
    env_files: list[str],
    port: int | None = None,
    ports: list[str] | None = None,
    gpu: int | None = None,
    build_args: dict[str, str] | None = None,
) -> dict[str, Any]:
    build: dict[str, Any] = {
        "context": ".",
        "dockerfile": "Dockerfile",
        "target": target,
        "args": IMAGES[target] | (build_args or {}),
    }
    service: dict[str, Any] = {"image": f"meshforge/{target}:{tag}", "build": build}
    if command is not None:
        service["command"] = command
    service["restart"] = "unless-stopped"
    env = common_environment()
    if port is not None:
        # The port the replica lists, health check and published port use: a layout value too.
        env[port_variable(target)] = str(port)
    if gpu is not None:
        # device_ids makes only host GPU <gpu> visible in the container, where it is index 0.
        env["CUDA_VISIBLE_DEVICES"] = "0"
    env.update(environment)
    service["env_file"] = env_files
    service["environment"] = env
    service["volumes"] = [f"./{name}:/{name}" for name in SHARED_FOLDERS]
    if ports:
        service["ports"] = ports
    if depends_on:
        service["depends_on"] = {name: {"condition": "service_healthy"} for name in depends_on}
    service["healthcheck"] = healthcheck
    if gpu is not None:
        service["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "device_ids": [str(gpu)], "capabilities": ["gpu"]}]
                }
            }
        }
    return service


def ui_service(env_files: list[str]) -> dict[str, Any]:
    """The web UI on 127.0.0.1:38101; host nginx proxies /3d-test/ to it. Its env_file is the services'
    (MESHFORGE_UI_ALLOWED_HOSTS goes in meshforge.env); it gets no secret."""
    probe = (
        f"fetch('http://127.0.0.1:{UI_PORT}/3d-test/')"
        ".then(r => process.exit(r.ok ? 0 : 1)).catch(() => process.exit(1))"
    )
    return {
        "image": f"meshforge/ui:{version()}",
        "build": {"context": ".", "dockerfile": "ui/Dockerfile"},
        "restart": "unless-stopped",
        "env_file": env_files,
        "environment": {"MESHFORGE_API": f"http://orchestrator:{PORTS['orchestrator']}"},
        "ports": [f"127.0.0.1:{UI_PORT}:{UI_PORT}"],
        "depends_on": {"orchestrator": {"condition": "service_healthy"}},
        "healthcheck": {
            "test": ["CMD", "node", "-e", probe],
            "interval": "15s",
            "timeout": "10s",
            "retries": 5,
            "start_period": "20s",
        },
    }
