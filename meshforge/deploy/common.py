"""What every generator shares: the repository root, the services' ports and variable names, the
shared folders, the secrets and the profiles' default backends, defined here once."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

# meshforge/deploy/common.py -> the checkout: the generators read pyproject.toml and write files there.
ROOT = Path(__file__).resolve().parents[2]

# Ports are the settings defaults (meshforge/settings/, each process's class); the containers keep them.
PORTS = {
    "orchestrator": 38100,
    "image-service": 38110,
    "flux-service": 38120,
    "reconstruction-service": 38130,
    "postprocess-service": 38140,
}
UI_PORT = 38101  # the web UI's server (ui/vite.config.ts), which reads no settings class
SHARED_FOLDERS = ("models", "inputs", "outputs", "cache")
# The secrets: never in a generated file. Compose reads them from .env, Kubernetes from a Secret.
SECRETS = ("MESHFORGE_INTERNAL_TOKEN", "MESHFORGE_REDIS_PASSWORD")
# The operator's settings (any MESHFORGE_* variable; meshforge.env.example lists them all, commented out),
# next to the compose file and git-ignored. Every service but Redis reads it as its env_file, after its
# profile's defaults, so it overrides those; the `environment:` the generator writes (the layout:
# addresses, folders, replica lists, secrets) wins over both. Compose requires the file to exist.
SETTINGS_FILE = "meshforge.env"
SETTINGS_EXAMPLE = "meshforge.env.example"
# What each profile chooses that the operator may change in meshforge.env: the backends. Compose writes
# them to deploy/compose/<profile>.env, Kubernetes (GPU nodes) to the ConfigMap meshforge-defaults.
PROFILE_DEFAULTS: dict[str, dict[str, str]] = {
    "gpu": {"MESHFORGE_FLUX_BACKEND": "diffusers", "MESHFORGE_RECONSTRUCTION_BACKEND": "triposr"},
    "cpu": {"MESHFORGE_FLUX_BACKEND": "procedural", "MESHFORGE_RECONSTRUCTION_BACKEND": "visual_hull"},
}
# The public host name: of the Kubernetes Ingress, and the UI's allowed host there.
DOMAIN = "elohim-bitch-gpu.insanelabs.org"
# The dispatcher runs in the orchestrator's image; only the command differs.
DISPATCHER_COMMAND = ["python", "-m", "orchestrator.dispatcher"]


def version() -> str:
    """The project's version, the tag of every image the deployments name."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def port_variable(target: str) -> str:
    """The setting holding a service's port: MESHFORGE_ORCHESTRATOR_PORT, MESHFORGE_FLUX_SERVICE_PORT..."""
    return f"MESHFORGE_{target.upper().replace('-', '_')}_PORT"


def write_or_print(argv: list[str], path: Path, text: str) -> int:
    """What every deployment generator's main does: print with --stdout, else write the file."""
    if "--stdout" in argv:
        sys.stdout.write(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0
