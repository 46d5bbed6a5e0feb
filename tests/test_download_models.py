"""scripts/download-models puts every model where the services look for it, says its licence and size
first, checks the configured backends without downloading, and runs from a Python without
huggingface_hub.

No network: the hub is tests/fake_hub.py on loopback (the real huggingface_hub client, through
HF_ENDPOINT), the U²-Net file is served by a loopback HTTP server, and the bare-host bootstrap installs a
stand-in huggingface_hub wheel from a local folder (pip --no-index). "Where they are looked for" is
proved with the services' own functions: image-service's resolve_model_file and meshforge.models'
locate_model, with default settings.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from image_service.matting.onnx_segmentation import OnnxSegmentation, resolve_model_file
from meshforge.models import locate_model
from meshforge.settings import FluxSettings, ImageSettings, ReconstructionSettings, is_settings_variable
from tests.fake_hub import serve_fake_hub
from tests.fleet import REPO
from tests.tiny_matting import build_tiny_matting_model

SCRIPT = REPO / "scripts" / "download-models"


def load_download_models() -> ModuleType:
    """The script as a module (it has no .py suffix, so by its loader)."""
    loader = importlib.machinery.SourceFileLoader("download_models", str(SCRIPT))
    spec = importlib.util.spec_from_loader("download_models", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["download_models"] = module  # dataclasses look their module up while the class is built
    loader.exec_module(module)
    return module


dm = load_download_models()


def clean_env(**extra: str) -> dict[str, str]:
    """This shell's environment without its settings or Hugging Face variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not is_settings_variable(k) and not k.startswith(("HF_", "HUGGING")) and k != dm.TRIED
    }
    env.update(extra)
    return env


def run(
    *args: str, env: dict[str, str], cwd: Path, python: str | Path = sys.executable, script: Path = SCRIPT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# --- the table -----------------------------------------------------------------------------------------


def test_list_shows_every_model_with_its_licence_size_and_destination(tmp_path: Path) -> None:
    done = run("--list", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name, model in dm.KNOWN.items():
        block = done.stdout.split(f"\n{name} ", 1)[1].split("\n\n", 1)[0]
        assert model.source in block
        assert f"licence: {model.licence}" in block
        assert f"size:    {model.size}" in block
        assert "goes to: models/" in block
    licences = {name: model.licence for name, model in dm.KNOWN.items()}
    assert licences["flux-schnell"] == "Apache-2.0"
    assert (
        licences["flux-dev"].startswith("FLUX.1 [dev] Non-Commercial License")
        and "gated" in licences["flux-dev"]
    )
    assert licences["triposr"] == "MIT"
    assert licences["matting"] == "Apache-2.0"
    assert "bria-rmbg-1.4" in licences["rmbg"] and "non-commercial" in licences["rmbg"]
    assert licences["instantmesh"] == "Apache-2.0"
    assert licences["zero123plus"].startswith("CC-BY-NC-4.0") and "commercial" in licences["zero123plus"]
    assert "goes to: models/matting/u2net.onnx" in done.stdout
    assert f"models/ is {tmp_path / 'models'}" in done.stdout


def test_the_script_names_what_the_default_settings_look_for() -> None:
    """The script cannot import the settings on a bare host, so it spells the defaults out: they must
    stay the settings' defaults."""
    assert ImageSettings.model_fields["matting_model_path"].default == Path(dm.DEFAULT_MATTING_FILE)
    assert FluxSettings.model_fields["flux_model"].default == dm.DEFAULT_FLUX_MODEL
    assert ReconstructionSettings.model_fields["triposr_model"].default == dm.DEFAULT_TRIPOSR_MODEL
    triposr = pytest.importorskip("reconstruction_service.triposr.model")
    assert (triposr.CONFIG_FILE, triposr.WEIGHTS_FILE) == dm.TRIPOSR_FILES
    pytest.importorskip("diffusers")
    from reconstruction_service.instantmesh import model as lrm
    from reconstruction_service.instantmesh import zero123plus_loading as zero123plus

    assert (lrm.WEIGHTS_FILE, zero123plus.FINETUNED_UNET_FILE) == dm.INSTANTMESH_FILES
    assert (zero123plus.INSTANTMESH_REPO, zero123plus.ZERO123PLUS_REPO) == (
        dm.INSTANTMESH_REPO,
        dm.ZERO123PLUS_REPO,
    )
    assert zero123plus.MODEL_INDEX == dm.ZERO123PLUS_INDEX
    assert {f"{name}/*" for name in zero123plus.COMPONENTS} <= set(dm.ZERO123PLUS_FILES)


def test_a_download_states_licence_and_size_before_it_starts(tmp_path: Path) -> None:
    done = run("--dry-run", "--models-dir", str(tmp_path), "rmbg", "flux-dev", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "licence: bria-rmbg-1.4: non-commercial use only" in done.stdout
    assert "licence: FLUX.1 [dev] Non-Commercial License" in done.stdout
    assert done.stdout.count("size:    ~") == 2
    # the models the defaults do not look for name their setting before anything is fetched
    assert f"set MESHFORGE_MATTING_MODEL_PATH={dm.RMBG_FILE}" in done.stdout
    assert "set MESHFORGE_FLUX_MODEL=black-forest-labs/FLUX.1-dev" in done.stdout
    assert not any(tmp_path.iterdir())


# --- --check -------------------------------------------------------------------------------------------


def test_check_with_the_offline_backends_needs_nothing(tmp_path: Path) -> None:
    done = run("--check", env=clean_env(MESHFORGE_DATA_DIR=str(tmp_path)), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("needs no weights") == 3
    assert "nothing to download" in done.stdout
    assert not (tmp_path / "models").exists()


def test_check_says_the_onnx_matting_model_is_missing_and_how_to_get_it(tmp_path: Path) -> None:
    env = clean_env(MESHFORGE_DATA_DIR=str(tmp_path), MESHFORGE_MATTING_BACKEND="onnx")
    done = run("--check", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "MESHFORGE_MATTING_BACKEND=onnx: MISSING" in done.stdout
    assert f"no file at {tmp_path / 'models' / 'matting' / 'u2net.onnx'}" in done.stdout
    assert "fix: scripts/download-models matting\n" in done.stdout
    assert not (tmp_path / "models").exists()  # nothing downloaded


def test_check_reads_the_env_file_as_the_services_do(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MESHFORGE_RECONSTRUCTION_BACKEND=triposr\n")
    done = run("--check", env=clean_env(MESHFORGE_DATA_DIR=str(tmp_path)), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "MESHFORGE_RECONSTRUCTION_BACKEND=triposr: MISSING" in done.stdout
    assert "fix: scripts/download-models triposr" in done.stdout
    (tmp_path / "meshforge.env").write_text("MESHFORGE_RECONSTRUCTION_BACKEND=visual_hull\n")
    assert run("--check", env=clean_env(MESHFORGE_DATA_DIR=str(tmp_path)), cwd=tmp_path).returncode == 0


def test_check_reads_a_compose_profile_as_its_containers_do(tmp_path: Path) -> None:
    """deploy/compose/<profile>.env, then meshforge.env over it, and the checkout's models/ (which compose
    mounts at /models)."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    script = checkout / "scripts" / "download-models"
    script.write_text(SCRIPT.read_text())
    (checkout / "deploy" / "compose").mkdir(parents=True)
    (checkout / "deploy" / "compose" / "gpu.env").write_text(
        "MESHFORGE_FLUX_BACKEND=diffusers\nMESHFORGE_RECONSTRUCTION_BACKEND=triposr\n"
    )
    (checkout / "meshforge.env").write_text(
        "# MESHFORGE_FLUX_BACKEND=\nMESHFORGE_RECONSTRUCTION_BACKEND=visual_hull\n"
    )
    done = run("--check", "--profile", "gpu", env=clean_env(), cwd=tmp_path, script=script)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"models/ is {checkout / 'models'}" in done.stdout
    assert "MESHFORGE_FLUX_BACKEND=diffusers: MISSING" in done.stdout
    assert f"fix: scripts/download-models flux-schnell --models-dir {checkout / 'models'}" in done.stdout
    assert "MESHFORGE_RECONSTRUCTION_BACKEND=visual_hull: needs no weights" in done.stdout
    refused = run("--check", "--profile", "gpus", env=clean_env(), cwd=tmp_path, script=script)
    assert refused.returncode == 2 and "gpus.env" in refused.stderr


def test_a_matting_file_where_the_download_puts_it_passes_check_and_image_service_finds_it(
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    placed = dm.where(models, dm.KNOWN["matting"], "")
    build_tiny_matting_model(placed)
    env = clean_env(MESHFORGE_DATA_DIR=str(tmp_path), MESHFORGE_MATTING_BACKEND="onnx")
    done = run("--check", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"matting model present at {placed}" in done.stdout
    # image-service, with nothing set but the backend and the data folder, loads that very file
    settings = ImageSettings(data_dir=tmp_path, matting_backend="onnx")
    assert resolve_model_file(settings) == placed
    assert OnnxSegmentation.from_settings(settings).path == placed


# --- downloads -----------------------------------------------------------------------------------------


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """An HTTP server on loopback serving ``files`` (path → bytes), as GitHub serves rembg's release."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", files
    server.shutdown()
    server.server_close()


def test_matting_download_writes_the_file_the_default_settings_read(
    tmp_path: Path, file_server: tuple[str, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, files = file_server
    tiny = build_tiny_matting_model(tmp_path / "served" / "u2net.onnx").read_bytes()
    files["/u2net.onnx"] = tiny
    matting = dataclasses.replace(
        dm.KNOWN["matting"], url=f"{url}/u2net.onnx", md5=hashlib.md5(tiny).hexdigest()
    )
    monkeypatch.setitem(dm.KNOWN, "matting", matting)
    data = tmp_path / "data"
    assert dm.main(["--models-dir", str(data / "models"), "matting"]) == 0
    settings = ImageSettings(data_dir=data, matting_backend="onnx")
    assert resolve_model_file(settings).read_bytes() == tiny
    assert OnnxSegmentation.from_settings(settings).input_size == (128, 128)
    assert [p.name for p in (data / "models" / "matting").iterdir()] == ["u2net.onnx"]  # no partial left
    assert dm.main(["--models-dir", str(data / "models"), "matting"]) == 0  # a second run keeps it


def test_a_matting_file_that_is_not_the_published_one_is_not_written(
    tmp_path: Path, file_server: tuple[str, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, files = file_server
    files["/u2net.onnx"] = b"an error page, not the model"
    monkeypatch.setitem(
        dm.KNOWN, "matting", dataclasses.replace(dm.KNOWN["matting"], url=f"{url}/u2net.onnx")
    )
    with pytest.raises(SystemExit, match="MD5"):
        dm.main(["--models-dir", str(tmp_path / "models"), "matting"])
    assert list((tmp_path / "models" / "matting").iterdir()) == []


FAKE_REPOS = {
    "black-forest-labs/FLUX.1-schnell": {
        "model_index.json": b'{"_class_name": "FluxPipeline"}',
        "transformer/config.json": b'{"_class_name": "FluxTransformer2DModel"}',
        "vae/config.json": b'{"_class_name": "AutoencoderKL"}',
        "flux1-schnell.safetensors": b"the single-file checkpoint the services do not read",
    },
    "black-forest-labs/FLUX.1-dev": {"model_index.json": b"{}"},
    "stabilityai/TripoSR": {
        "config.yaml": b"cond_image_size: 512\n",
        "model.ckpt": b"weights",
        "README.md": b"#",
    },
    "briaai/RMBG-1.4": {"onnx/model.onnx": b"onnx", "onnx/model_quantized.onnx": b"q", "README.md": b"#"},
    "TencentARC/InstantMesh": {
        "instant_mesh_large.ckpt": b"lrm",
        "diffusion_pytorch_model.bin": b"unet",
        "instant_mesh_base.ckpt": b"a variant the backend does not read",
        "instant_nerf_large.ckpt": b"another",
        "README.md": b"#",
    },
    "sudo-ai/zero123plus-v1.2": {
        "model_index.json": b'{"_class_name": "Zero123PlusPipeline"}',
        "unet/config.json": b"{}",
        "unet/diffusion_pytorch_model.safetensors": b"unet",
        "vae/config.json": b"{}",
        "feature_extractor_vae/preprocessor_config.json": b"{}",
        "ComfyUI_00034_.png": b"an example picture",
    },
}


def test_hub_downloads_land_where_the_services_look(tmp_path: Path) -> None:
    data = tmp_path / "data"
    models = data / "models"
    with serve_fake_hub(FAKE_REPOS) as hub:
        env = clean_env(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), MESHFORGE_DATA_DIR=str(data))
        done = run("flux-schnell", "triposr", "rmbg", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    assert hub.fetched("black-forest-labs/FLUX.1-schnell") == {
        "model_index.json", "transformer/config.json", "vae/config.json"
    }  # fmt: skip
    assert hub.fetched("briaai/RMBG-1.4") == {"onnx/model.onnx", "README.md"}
    # the services' own lookups find them with the default settings (RMBG: with the setting it names)
    flux = FluxSettings(data_dir=data, flux_backend="diffusers")
    from flux_service.backends.flux_loading import find_flux_folder

    assert (find_flux_folder(flux) / "model_index.json").read_bytes() == FAKE_REPOS[flux.flux_model][
        "model_index.json"
    ]
    triposr = ReconstructionSettings(data_dir=data)
    folder = locate_model(models, triposr.triposr_model, required=dm.TRIPOSR_FILES, setting="")
    assert (folder / "model.ckpt").read_bytes() == b"weights"
    rmbg = ImageSettings(data_dir=data, matting_model_path=Path(dm.RMBG_FILE))
    assert resolve_model_file(rmbg).read_bytes() == b"onnx"

    backends = {
        "MESHFORGE_FLUX_BACKEND": "diffusers",
        "MESHFORGE_RECONSTRUCTION_BACKEND": "triposr",
        "MESHFORGE_MATTING_BACKEND": "onnx",
        "MESHFORGE_MATTING_MODEL_PATH": dm.RMBG_FILE,
    }
    checked = run("--check", env={**env, **backends}, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("present") == 3


def test_instantmesh_and_zero123plus_are_checked_together_and_land_where_the_backend_looks(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = clean_env(MESHFORGE_DATA_DIR=str(data), MESHFORGE_RECONSTRUCTION_BACKEND="instantmesh")
    missing = run("--check", env=env, cwd=tmp_path)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "MESHFORGE_RECONSTRUCTION_BACKEND=instantmesh: MISSING" in missing.stdout
    assert "model TencentARC/InstantMesh not found" in missing.stdout
    assert "model sudo-ai/zero123plus-v1.2 not found" in missing.stdout
    assert "fix: scripts/download-models instantmesh zero123plus\n" in missing.stdout
    with serve_fake_hub(FAKE_REPOS) as hub:
        fetched_env = {**env, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
        done = run("instantmesh", "zero123plus", env=fetched_env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    assert "licence: Apache-2.0" in done.stdout and "licence: CC-BY-NC-4.0" in done.stdout
    assert hub.fetched("TencentARC/InstantMesh") == {*dm.INSTANTMESH_FILES, "README.md"}
    assert "ComfyUI_00034_.png" not in hub.fetched("sudo-ai/zero123plus-v1.2")
    checked = run("--check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("present in") == 2
    # the backend's own lookup, with the default settings, finds the same folders
    backend = pytest.importorskip("reconstruction_service.backends.instantmesh")
    lrm_folder, pipeline_folder = backend.locate_models(ReconstructionSettings(data_dir=data))
    assert (lrm_folder / "instant_mesh_large.ckpt").read_bytes() == b"lrm"
    assert (pipeline_folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == b"unet"


def test_a_gated_model_without_a_token_says_how_to_get_access(tmp_path: Path) -> None:
    with serve_fake_hub(FAKE_REPOS, gated=frozenset({"black-forest-labs/FLUX.1-dev"})) as hub:
        env = clean_env(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"))
        done = run("--models-dir", str(tmp_path / "models"), "flux-dev", env=env, cwd=tmp_path)
    assert done.returncode != 0
    assert "licence: FLUX.1 [dev] Non-Commercial License" in done.stdout
    assert "black-forest-labs/FLUX.1-dev is gated: accept its licence" in done.stderr
    assert "HF_TOKEN" in done.stderr


# --- a Python without huggingface_hub --------------------------------------------------------------------


def bare_python(folder: Path) -> Path:
    """A Python that has nothing installed: not huggingface_hub, not meshforge's dependencies."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    assert subprocess.run([python, "-c", "import huggingface_hub"], capture_output=True).returncode != 0
    return python


def test_a_python_without_huggingface_hub_runs_it_again_in_the_project_venv(tmp_path: Path) -> None:
    python = bare_python(tmp_path / "bare")
    data = tmp_path / "data"
    with serve_fake_hub(FAKE_REPOS) as hub:
        env = clean_env(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), MESHFORGE_DATA_DIR=str(data))
        done = run("triposr", env=env, cwd=tmp_path, python=python)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"running again with {REPO / '.venv' / 'bin' / 'python'}" in done.stdout
    settings = ReconstructionSettings(data_dir=data)
    assert locate_model(settings.models_path, settings.triposr_model, required=dm.TRIPOSR_FILES, setting="")


DIST_INFO = "huggingface_hub-99.0.dist-info"


def stand_in_huggingface_hub_wheel(folder: Path) -> Path:
    """A wheel named huggingface_hub whose snapshot_download records its arguments and writes the cache
    layout's snapshot folder: enough to prove what the script asks of it, without a network."""
    sources = {
        "huggingface_hub/__init__.py": (
            "import json, pathlib\n"
            "def snapshot_download(repo_id, *, revision=None, cache_dir=None, local_dir=None,\n"
            "                      allow_patterns=None, token=None):\n"
            "    cache = pathlib.Path(cache_dir) / ('models--' + repo_id.replace('/', '--'))\n"
            "    folder = pathlib.Path(local_dir) if local_dir else cache / 'snapshots' / 'stand-in'\n"
            "    folder.mkdir(parents=True, exist_ok=True)\n"
            "    (folder / 'arguments.json').write_text(json.dumps(\n"
            "        {'repo_id': repo_id, 'cache_dir': str(cache_dir), 'allow_patterns': allow_patterns}))\n"
            "    return str(folder)\n"
        ),
        "huggingface_hub/errors.py": (
            "class GatedRepoError(Exception): pass\nclass RepositoryNotFoundError(Exception): pass\n"
        ),
        f"{DIST_INFO}/METADATA": "Metadata-Version: 2.1\nName: huggingface_hub\nVersion: 99.0\n",
        f"{DIST_INFO}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in sources.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{DIST_INFO}/RECORD,,")
    folder.mkdir(parents=True)
    wheel = folder / "huggingface_hub-99.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in sources.items():
            archive.writestr(name, text)
        archive.writestr(f"{DIST_INFO}/RECORD", "\n".join(record) + "\n")
    return folder


def test_a_bare_host_gets_a_small_virtualenv_with_huggingface_hub(tmp_path: Path) -> None:
    """No project .venv (a checkout on a bare host): the script makes its own virtualenv, pip-installs
    huggingface_hub there (here from a local folder) and runs itself again in it."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    script = checkout / "scripts" / "download-models"
    script.write_text(SCRIPT.read_text())
    wheels = stand_in_huggingface_hub_wheel(tmp_path / "wheels")
    python = bare_python(tmp_path / "bare")
    models = tmp_path / "models"
    env = clean_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels), MESHFORGE_MODELS_DIR=str(models))
    done = run("triposr", env=env, cwd=tmp_path, python=python, script=script)
    assert done.returncode == 0, done.stdout + done.stderr
    venv = checkout / ".venv-download"
    assert f"making a virtualenv for it in {venv}" in done.stdout
    assert f"running again with {venv / 'bin' / 'python'}" in done.stdout
    assert (venv / ".gitignore").read_text() == "*\n"
    snapshot = models / "hub" / "models--stabilityai--TripoSR" / "snapshots" / "stand-in"
    arguments = json.loads((snapshot / "arguments.json").read_text())
    assert arguments == {
        "repo_id": "stabilityai/TripoSR",
        "cache_dir": str(models / "hub"),
        "allow_patterns": [*dm.TRIPOSR_FILES, "README.md"],
    }
    # a second run finds the virtualenv it made and installs nothing
    again = run("triposr", env=env, cwd=tmp_path, python=python, script=script)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "making a virtualenv" not in again.stdout
