"""The whole compose file for a layout: Redis, the control plane, one replica per GPU of each model
stage, post-processing, the UI and Prometheus."""

from __future__ import annotations

from typing import Any

from meshforge.deploy import prometheus
from meshforge.deploy.common import DISPATCHER_COMMAND, PORTS, SETTINGS_EXAMPLE, SETTINGS_FILE, version
from meshforge.deploy.compose.companions import defaults_file
from meshforge.deploy.compose.layout import Layout
from meshforge.deploy.compose.services import (
    REDIS_PASSWORD,
    app_service,
    dispatcher_healthcheck,
    dispatcher_metrics_env,
    http_healthcheck,
    secret,
    ui_service,
    urls,
)
from meshforge.deploy.yaml_text import Comment, emit


def redis_service() -> dict[str, Any]:
    return {
        "image": "redis:7.4",
        # AOF with fsync every second: a crash loses at most one second of queue writes. A password:
        # every container on the compose network can reach port 6379.
        "command": [
            "redis-server",
            *("--requirepass", REDIS_PASSWORD),
            *("--appendonly", "yes", "--appendfsync", "everysec", "--dir", "/data"),
        ],
        "restart": "unless-stopped",
        # redis-cli (the health check) reads its password from REDISCLI_AUTH.
        "environment": {"REDISCLI_AUTH": REDIS_PASSWORD},
        "volumes": ["redis-data:/data"],
        "healthcheck": {
            "test": ["CMD", "redis-cli", "ping"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 5,
        },
    }


def build_services(layout: Layout) -> dict[str, Any]:
    """Every service but the UI and Prometheus, in the file's order."""
    tag = version()
    flux_urls = urls(layout.flux, PORTS["flux-service"])
    reconstruction_urls = urls(layout.reconstruction, PORTS["reconstruction-service"])
    replica_lists = {
        "MESHFORGE_IMAGE_SERVICE_URLS": urls(["image-service"], PORTS["image-service"]),
        "MESHFORGE_FLUX_SERVICE_URLS": flux_urls,
        "MESHFORGE_RECONSTRUCTION_SERVICE_URLS": reconstruction_urls,
        "MESHFORGE_POSTPROCESS_SERVICE_URLS": urls(["postprocess-service"], PORTS["postprocess-service"]),
    }
    # Model loading on a GPU takes minutes; the offline backends start in seconds.
    stage_start = "20s" if layout.cpu else "600s"
    # The profile's backends are defaults, in an env_file that meshforge.env (read after it) overrides.
    env_files = [defaults_file(layout.profile), SETTINGS_FILE]
    # The torch images (flux, reconstruction) are built on plain Ubuntu with torch's CPU build in the CPU
    # profile, under their own tag.
    torch_args = {"BASE_IMAGE": "ubuntu:24.04", "TORCH_CUDA": "cpu"} if layout.cpu else None
    torch_tag = f"{tag}-cpu" if layout.cpu else tag

    services: dict[str, Any] = {
        "redis": redis_service(),
        "orchestrator": app_service(
            target="orchestrator",
            tag=tag,
            command=None,
            environment=replica_lists,
            depends_on=["redis"],
            # Loopback only: the public side is a reverse proxy on the host (nginx/).
            ports=[f"127.0.0.1:{PORTS['orchestrator']}:{PORTS['orchestrator']}"],
            healthcheck=http_healthcheck(PORTS["orchestrator"], "20s"),
            env_files=env_files,
            port=PORTS["orchestrator"],
        ),
        "dispatcher": app_service(
            # Same image as the orchestrator; only the command differs.
            target="orchestrator",
            tag=tag,
            command=DISPATCHER_COMMAND,
            # Its metrics port is the layout too: Prometheus scrapes it there.
            environment={**replica_lists, **dispatcher_metrics_env()},
            depends_on=["redis", "image-service", *layout.reconstruction, "postprocess-service"],
            healthcheck=dispatcher_healthcheck(),
            env_files=env_files,
        ),
        "image-service": app_service(
            target="image-service",
            tag=tag,
            command=None,
            environment={"MESHFORGE_FLUX_SERVICE_URLS": flux_urls},
            depends_on=list(layout.flux),
            healthcheck=http_healthcheck(PORTS["image-service"], "20s"),
            env_files=env_files,
            port=PORTS["image-service"],
        ),
    }
    if not layout.cpu:
        services["_gpus"] = Comment(
            "One replica per GPU. device_ids shows the container only that GPU, as its index 0, "
            "hence CUDA_VISIBLE_DEVICES=0."
        )

    def gpu_replicas(service: str, names: list[str], devices: list[int | None]) -> dict[str, Any]:
        """One container per GPU of a model stage (flux-service, reconstruction-service)."""
        return {
            name: app_service(
                target=service,
                tag=torch_tag,
                build_args=torch_args,
                command=None,
                environment={},
                depends_on=[],
                healthcheck=http_healthcheck(PORTS[service], stage_start),
                env_files=env_files,
                port=PORTS[service],
                gpu=device,
            )
            for name, device in zip(names, devices, strict=True)
        }

    services |= gpu_replicas("flux-service", layout.flux, layout.flux_devices)
    services |= gpu_replicas("reconstruction-service", layout.reconstruction, layout.reconstruction_devices)
    services["postprocess-service"] = app_service(
        target="postprocess-service",
        tag=tag,
        command=None,
        environment={},
        depends_on=[],
        healthcheck=http_healthcheck(PORTS["postprocess-service"], "20s"),
        env_files=env_files,
        port=PORTS["postprocess-service"],
    )
    return services


def header(layout: Layout, argv: list[str]) -> list[str]:
    lines = [
        "# Generated by scripts/generate_compose.py " + " ".join(argv) + ". Do not edit: regenerate.",
        "# See docs/deployment.md.",
    ]
    if layout.cpu:
        lines += [
            "# CPU profile: offline backends (procedural images, visual-hull reconstruction), no GPU.",
            "# Usage: docker compose -f docker-compose.cpu.yml up -d",
        ]
    else:
        flux = ", ".join(str(d) for d in layout.flux_devices)
        reconstruction = ", ".join(str(d) for d in layout.reconstruction_devices)
        lines += [
            f"# GPU profile for {layout.gpus} GPU(s): flux-service on GPU {flux}, "
            f"reconstruction-service on GPU {reconstruction}.",
            "# The GPU backends (diffusers FLUX.1, triposr) load their weights from ./models at start-up:",
            "# fetch them first with scripts/download-models (see docs/flux.md and docs/triposr.md).",
        ]
    lines += [
        "# Settings: every service but redis reads "
        f"{defaults_file(layout.profile)} (this profile's backends), then",
        f"# {SETTINGS_FILE}, which overrides it and must exist: cp {SETTINGS_EXAMPLE} {SETTINGS_FILE}.",
        "# The `environment:` entries below (the layout) win over both.",
        f"# Prometheus (prometheus) scrapes every replica, on 127.0.0.1:{prometheus.PORT} only: see "
        "docs/operations.md (Metrics).",
    ]
    return lines


def render(layout: Layout, argv: list[str], compose_file: str) -> str:
    """The compose file's text; `argv` (the generator's arguments) goes in its first line."""
    services = build_services(layout)
    services["ui"] = ui_service([defaults_file(layout.profile), SETTINGS_FILE])
    services["prometheus"] = prometheus.compose_service(
        prometheus.compose_file_for(compose_file), secret("MESHFORGE_INTERNAL_TOKEN")
    )
    lines = header(layout, argv)
    lines.append("services:")
    lines.extend(emit(services, 1))
    lines.append("volumes:")
    lines.append("  redis-data: {}")
    lines.append("  prometheus-data: {}")
    return "\n".join(lines) + "\n"
