#!/usr/bin/env python3
"""Write the production docker-compose file for a server with N GPUs (or the CPU-only profile).

    python scripts/generate_compose.py --gpus 8                 # -> docker-compose.yml
    python scripts/generate_compose.py --cpu                    # -> docker-compose.cpu.yml
    python scripts/generate_compose.py --gpus 4 --flux-gpus 1 --output my-compose.yml

The compose files are generated, never edited by hand: tests/test_compose.py checks that every
committed one equals what this script produces now. The output is plain YAML written by hand (every
string double-quoted, i.e. JSON-escaped) so that it can carry comments and needs no YAML library.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Ports are the settings defaults (meshforge/settings/, each process's class); the containers keep them.
PORTS = {
    "orchestrator": 38100,
    "image-service": 38110,
    "flux-service": 38120,
    "reconstruction-service": 38130,
    "postprocess-service": 38140,
}
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
# The secrets come from the shell or the project's .env file, never from a committed file:
# `docker compose` stops, naming the variable, while one is unset or empty (docs/deployment.md).
SECRETS = ("MESHFORGE_INTERNAL_TOKEN", "MESHFORGE_REDIS_PASSWORD")


def secret(name: str) -> str:
    assert name in SECRETS
    return f"${{{name}:?set it in .env (openssl rand -hex 32), see docs/deployment.md}}"


REDIS_PASSWORD = secret("MESHFORGE_REDIS_PASSWORD")
# The password in the URL: hex (openssl rand -hex 32) needs no URL escaping.
REDIS_URL = f"redis://:{REDIS_PASSWORD}@redis:6379/0"
SHARED_FOLDERS = ("models", "inputs", "outputs", "cache")
# Compose paths of the profiles that are committed, keyed by the generator arguments that make them.
COMMITTED = {
    "docker-compose.yml": ["--gpus", "8"],
    "docker-compose.cpu.yml": ["--cpu"],
}


@dataclass
class Comment:
    """A YAML comment line inside a mapping, placed before the next key."""

    text: str


@dataclass
class Layout:
    """Which host GPU each replica reserves (None: no reservation, the CPU profile)."""

    flux_devices: list[int | None]
    reconstruction_devices: list[int | None]
    cpu: bool
    gpus: int

    @property
    def flux(self) -> list[str]:
        return [f"flux-{i}" for i in range(len(self.flux_devices))]

    @property
    def reconstruction(self) -> list[str]:
        return [f"reconstruction-{i}" for i in range(len(self.reconstruction_devices))]


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


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


def app_service(
    *,
    target: str,
    tag: str,
    command: list[str] | None,
    environment: dict[str, str],
    depends_on: list[str],
    healthcheck: dict[str, Any],
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
    if gpu is not None:
        # device_ids makes only host GPU <gpu> visible in the container, where it is index 0.
        env["CUDA_VISIBLE_DEVICES"] = "0"
    env.update(environment)
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


def build_services(layout: Layout) -> dict[str, Any]:
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
    # The GPU defaults can be overridden from the shell (or .env) until those backends exist.
    flux_backend = "procedural" if layout.cpu else "${MESHFORGE_FLUX_BACKEND:-diffusers}"
    reconstruction_backend = "visual_hull" if layout.cpu else "${MESHFORGE_RECONSTRUCTION_BACKEND:-triposr}"
    # The torch images (flux, reconstruction) are built on plain Ubuntu with torch's CPU build in the CPU
    # profile, under their own tag.
    torch_args = {"BASE_IMAGE": "ubuntu:24.04", "TORCH_CUDA": "cpu"} if layout.cpu else None
    torch_tag = f"{tag}-cpu" if layout.cpu else tag

    services: dict[str, Any] = {
        "redis": {
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
        },
        "orchestrator": app_service(
            target="orchestrator",
            tag=tag,
            command=None,
            environment=replica_lists,
            depends_on=["redis"],
            # Loopback only: the public side is a reverse proxy on the host (nginx/, another issue).
            ports=[f"127.0.0.1:{PORTS['orchestrator']}:{PORTS['orchestrator']}"],
            healthcheck=http_healthcheck(PORTS["orchestrator"], "20s"),
        ),
        "dispatcher": app_service(
            # Same image as the orchestrator; only the command differs.
            target="orchestrator",
            tag=tag,
            command=["python", "-m", "orchestrator.dispatcher"],
            environment=replica_lists,
            depends_on=["redis", "image-service", *layout.reconstruction, "postprocess-service"],
            healthcheck=dispatcher_healthcheck(),
        ),
        "image-service": app_service(
            target="image-service",
            tag=tag,
            command=None,
            environment={"MESHFORGE_FLUX_SERVICE_URLS": flux_urls},
            depends_on=list(layout.flux),
            healthcheck=http_healthcheck(PORTS["image-service"], "20s"),
        ),
    }
    if not layout.cpu:
        services["_gpus"] = Comment(
            "One replica per GPU. device_ids shows the container only that GPU, as its index 0, "
            "hence CUDA_VISIBLE_DEVICES=0."
        )

    def gpu_replicas(
        service: str, names: list[str], devices: list[int | None], environment: dict[str, str]
    ) -> dict[str, Any]:
        """One container per GPU of a model stage (flux-service, reconstruction-service)."""
        return {
            name: app_service(
                target=service,
                tag=torch_tag,
                build_args=torch_args,
                command=None,
                environment=environment,
                depends_on=[],
                healthcheck=http_healthcheck(PORTS[service], stage_start),
                gpu=device,
            )
            for name, device in zip(names, devices, strict=True)
        }

    services |= gpu_replicas(
        "flux-service", layout.flux, layout.flux_devices, {"MESHFORGE_FLUX_BACKEND": flux_backend}
    )
    services |= gpu_replicas(
        "reconstruction-service",
        layout.reconstruction,
        layout.reconstruction_devices,
        {"MESHFORGE_RECONSTRUCTION_BACKEND": reconstruction_backend},
    )
    services["postprocess-service"] = app_service(
        target="postprocess-service",
        tag=tag,
        command=None,
        environment={},
        depends_on=[],
        healthcheck=http_healthcheck(PORTS["postprocess-service"], "20s"),
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
    return lines


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid double-quoted YAML scalar


def emit(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, Comment):
                lines.append(f"{pad}# {item.text}")
            elif isinstance(item, list) and item and not any(isinstance(x, dict) for x in item):
                # Scalar lists inline (a JSON array is YAML flow style) when they fit on one line.
                inline = f"{pad}{key}: [{', '.join(scalar(x) for x in item)}]"
                if len(inline) <= 110:
                    lines.append(inline)
                else:
                    lines.append(f"{pad}{key}:")
                    lines.extend(emit(item, indent + 1))
            elif isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(emit(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {scalar(item) if not isinstance(item, dict | list) else '{}'}")
    else:
        for item in value:
            if isinstance(item, dict):
                first, *rest = emit(item, indent + 1)
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {scalar(item)}")
    return lines


def ui_service() -> dict[str, Any]:
    """The web UI on 127.0.0.1:38101; host nginx proxies /3d-test/ to it."""
    probe = (
        "fetch('http://127.0.0.1:38101/3d-test/')"
        ".then(r => process.exit(r.ok ? 0 : 1)).catch(() => process.exit(1))"
    )
    return {
        "image": f"meshforge/ui:{version()}",
        "build": {"context": ".", "dockerfile": "ui/Dockerfile"},
        "restart": "unless-stopped",
        "environment": {"MESHFORGE_API": f"http://orchestrator:{PORTS['orchestrator']}"},
        "ports": ["127.0.0.1:38101:38101"],
        "depends_on": {"orchestrator": {"condition": "service_healthy"}},
        "healthcheck": {
            "test": ["CMD", "node", "-e", probe],
            "interval": "15s",
            "timeout": "10s",
            "retries": 5,
            "start_period": "20s",
        },
    }


def render(layout: Layout, argv: list[str]) -> str:
    services = build_services(layout)
    # Comments go where later pieces will slot in, so whoever adds them finds the place.
    services["ui"] = ui_service()
    lines = header(layout, argv)
    lines.append("services:")
    lines.extend(emit(services, 1))
    lines.append("volumes:")
    lines.append("  redis-data: {}")
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
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


def generate(argv: list[str]) -> tuple[Path, str]:
    """The compose text for these arguments, and where it goes."""
    args = parse(argv)
    layout = layout_for(args)
    text = render(layout, [a for a in argv if a not in ("--stdout",)])
    default = "docker-compose.cpu.yml" if args.cpu else "docker-compose.yml"
    return (args.output or ROOT / default), text


def write_or_print(argv: list[str], path: Path, text: str) -> int:
    """What every generator's main does: print with --stdout, else write the file."""
    if "--stdout" in argv:
        sys.stdout.write(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return write_or_print(argv, *generate(argv))


if __name__ == "__main__":
    raise SystemExit(main())
