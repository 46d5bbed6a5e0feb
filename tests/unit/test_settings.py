"""Settings per process: each class reads its MESHFORGE_* names (and the spec's aliases), holds only what
its process reads, and defines every field once; storage paths built from them."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from meshforge.errors import InvalidInput
from meshforge.schemas import QualityTier
from meshforge.settings import (
    DEFAULT_TIERS,
    PROCESS_SETTINGS,
    SPEC_NAMES,
    CommonSettings,
    DispatcherSettings,
    FluxSettings,
    ImageSettings,
    OrchestratorSettings,
    PostprocessSettings,
    ReconstructionSettings,
    SettingsGroup,
    TierProfile,
    env_names,
    is_settings_variable,
    load_settings,
    settings_or_exit,
)
from meshforge.storage import Storage

# Every variable the single settings class read before the split: none may change its name.
FIELDS_BEFORE_THE_SPLIT = """
data_dir models_dir inputs_dir outputs_dir cache_dir redis_url log_level host orchestrator_port
image_service_port flux_service_port reconstruction_service_port postprocess_service_port
image_service_urls flux_service_urls reconstruction_service_urls postprocess_service_urls
flux_backend reconstruction_backend postprocess_backend flux_model flux_model_path flux_device
flux_dtype flux_memory_mode flux_compile flux_steps flux_guidance flux_max_batch triposr_model
triposr_model_path triposr_device triposr_dtype triposr_chunk_size triposr_mc_resolution
triposr_mc_threshold matting_backend matting_model_path foreground_ratio blender_python
blender_timeout_seconds dispatcher_concurrency lease_seconds reap_interval_seconds
stage_timeout_seconds replica_retry_seconds request_timeout_seconds max_upload_bytes max_images
download_max_bytes download_timeout_seconds download_max_redirects download_content_types
api_keys_file api_keys default_requests_per_minute default_max_concurrent_jobs max_queued_jobs
internal_token max_image_pixels image_work_concurrency max_attempts job_deadline_seconds
outbound_allowed_networks job_retention_seconds upload_retention_seconds retention_sweep_seconds
retention_batch tiers
"""
NAMES_BEFORE_THE_SPLIT = {f"MESHFORGE_{name.upper()}" for name in FIELDS_BEFORE_THE_SPLIT.split()}
# Added since, each with its row in the README's table: metrics and logs (docs/architecture.md).
NAMES_ADDED = {
    "MESHFORGE_LOG_FORMAT",
    "MESHFORGE_DISPATCHER_METRICS_PORT",
    "MESHFORGE_IDEMPOTENCY_SECONDS",
    "MESHFORGE_INSTANTMESH_CHUNK_SIZE",
    "MESHFORGE_INSTANTMESH_DEVICE",
    "MESHFORGE_INSTANTMESH_DTYPE",
    "MESHFORGE_INSTANTMESH_MODEL_PATH",
    "MESHFORGE_WEBHOOK_ALLOW_HTTP",
    "MESHFORGE_WEBHOOK_MAX_ATTEMPTS",
    "MESHFORGE_WEBHOOK_RETRY_SECONDS",
    "MESHFORGE_WEBHOOK_SECRET",
    "MESHFORGE_WEBHOOK_TIMEOUT_SECONDS",
    "MESHFORGE_ZERO123PLUS_DTYPE",
    "MESHFORGE_ZERO123PLUS_GUIDANCE",
    "MESHFORGE_ZERO123PLUS_MODEL_PATH",
    "MESHFORGE_ZERO123PLUS_STEPS",
}
SMALL_TIERS = (
    '{"standard": {"views": 4, "image_size": 128, "voxel_resolution": 64, "target_faces": 5000,'
    ' "texture_size": 512}, "high": {"views": 8, "image_size": 512, "voxel_resolution": 128,'
    ' "target_faces": 50000, "texture_size": 2048}}'
)
# Values (as the environment gives them, and as read) for the fields a generic sample does not fit.
SAMPLES: dict[str, tuple[str, Any]] = {
    **{
        f"{name}_dir": (f"/srv/{name}", Path(f"/srv/{name}"))
        for name in ("data", "models", "inputs", "outputs", "cache")
    },
    **{
        f"{stage}_service_urls": (
            f"http://{stage}-a:1/, http://{stage}-b:2",
            [f"http://{stage}-a:1", f"http://{stage}-b:2"],
        )
        for stage in ("image", "flux", "reconstruction", "postprocess")
    },
    "flux_model_path": ("/srv/flux", Path("/srv/flux")),
    "triposr_model_path": ("/srv/triposr", Path("/srv/triposr")),
    "instantmesh_model_path": ("/srv/instantmesh", Path("/srv/instantmesh")),
    "zero123plus_model_path": ("/srv/zero123plus", Path("/srv/zero123plus")),
    "api_keys_file": ("keys.json", Path("keys.json")),
    "api_keys": ("[]", "[]"),
    "flux_steps": ("7", 7),
    "flux_guidance": ("2.5", 2.5),
    "flux_memory_mode": ("model_offload", "model_offload"),
    "log_format": ("json", "json"),
    "download_content_types": ('["image/png"]', ["image/png"]),
    "outbound_allowed_networks": ("10.1.2.0/24", (ipaddress.ip_network("10.1.2.0/24"),)),
    "tiers": (
        SMALL_TIERS,
        {
            QualityTier.standard: TierProfile(
                views=4, image_size=128, voxel_resolution=64, target_faces=5000, texture_size=512
            ),
            QualityTier.high: TierProfile(
                views=8,
                image_size=512,
                voxel_resolution=128,
                target_faces=50000,
                texture_size=2048,
                reconstruction_backend="instantmesh",  # not overridden: the default's preference stays
            ),
        },
    ),
}


def sample(name: str, default: Any) -> tuple[str, Any]:
    """A valid value other than the default, as text for the environment and as read."""
    if name in SAMPLES:
        return SAMPLES[name]
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int):
        return str(default + 1), default + 1
    if isinstance(default, float):
        return str(default / 2), default / 2
    if isinstance(default, Path):
        return "/srv/sample", Path("/srv/sample")
    if isinstance(default, str):
        return "sample", "sample"
    raise AssertionError(f"no sample value for {name}: add one to SAMPLES")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the shell running the tests leaks in."""
    for variable in [name for name in os.environ if is_settings_variable(name)]:
        monkeypatch.delenv(variable)


@pytest.mark.parametrize("process", sorted(PROCESS_SETTINGS))
def test_each_process_class_reads_its_variables(process: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = PROCESS_SETTINGS[process]
    expected = {}
    for name, field in cls.model_fields.items():
        text, value = sample(name, field.get_default(call_default_factory=True))
        monkeypatch.setenv(env_names(name, field)[0], text)
        expected[name] = value
    settings = cls(_env_file=None)
    assert {name: getattr(settings, name) for name in expected} == expected


def test_every_variable_keeps_its_name_and_only_the_spec_names_are_new() -> None:
    names = {
        variable
        for cls in PROCESS_SETTINGS.values()
        for name, field in cls.model_fields.items()
        for variable in env_names(name, field)
    }
    assert names == NAMES_BEFORE_THE_SPLIT | NAMES_ADDED | SPEC_NAMES
    assert {"FLUX_MODEL", "FLUX_BACKEND_URL", "USE_IMAGE_STUB"} == SPEC_NAMES


def test_every_field_is_defined_once() -> None:
    groups: list[type[SettingsGroup]] = []
    pending: list[type[SettingsGroup]] = [SettingsGroup]
    while pending:
        group = pending.pop()
        groups.append(group)
        pending.extend(group.__subclasses__())
    owners: dict[str, set[str]] = {}
    for group in set(groups):
        for name in vars(group).get("__annotations__", {}):
            if name in group.model_fields:
                owners.setdefault(name, set()).add(group.__name__)
    assert {name: owner for name, owner in owners.items() if len(owner) > 1} == {}


@pytest.mark.parametrize(
    ("cls", "foreign"),
    [
        (FluxSettings, "dispatcher_concurrency"),
        (FluxSettings, "flux_service_urls"),
        (ReconstructionSettings, "flux_model"),
        (PostprocessSettings, "tiers"),
        (ImageSettings, "api_keys"),
        (ImageSettings, "reconstruction_service_urls"),
        (OrchestratorSettings, "lease_seconds"),
        (OrchestratorSettings, "matting_backend"),
        (DispatcherSettings, "max_upload_bytes"),
        (DispatcherSettings, "triposr_model"),
        (CommonSettings, "orchestrator_port"),
    ],
)
def test_a_class_holds_no_field_of_another_process(
    cls: type[CommonSettings], foreign: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"MESHFORGE_{foreign.upper()}", "1")  # set for another process: ignored here
    assert foreign not in cls.model_fields
    assert not hasattr(cls(_env_file=None), foreign)


def test_the_shared_fields_are_read_by_the_processes_that_use_them() -> None:
    def readers(name: str) -> set[str]:
        return {process for process, cls in PROCESS_SETTINGS.items() if name in cls.model_fields}

    assert readers("flux_service_urls") == {"orchestrator", "dispatcher", "image-service"}
    assert readers("reconstruction_service_urls") == {"orchestrator", "dispatcher"}
    assert readers("request_timeout_seconds") == {"dispatcher", "image-service"}
    assert readers("tiers") == {"dispatcher", "image-service"}
    assert readers("max_image_pixels") == {"orchestrator", "image-service"}
    assert readers("outbound_allowed_networks") == {"orchestrator", "dispatcher", "image-service"}
    assert readers("internal_token") == set(PROCESS_SETTINGS)


# --- the spec's names ----------------------------------------------------------------------------------


def test_flux_model_is_read_from_the_spec_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_MODEL", "black-forest-labs/FLUX.1-dev")
    assert FluxSettings(_env_file=None).flux_model == "black-forest-labs/FLUX.1-dev"


def test_the_meshforge_flux_model_wins_over_the_spec_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_MODEL", "black-forest-labs/FLUX.1-dev")
    monkeypatch.setenv("MESHFORGE_FLUX_MODEL", "mine/FLUX")
    assert FluxSettings(_env_file=None).flux_model == "mine/FLUX"


@pytest.mark.parametrize("cls", [OrchestratorSettings, DispatcherSettings, ImageSettings])
@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("http://gpu0:8000/, http://gpu1:8000", ["http://gpu0:8000", "http://gpu1:8000"]),
        ('["http://gpu0:8000"]', ["http://gpu0:8000"]),
        ("", []),  # no FLUX replicas
    ],
)
def test_flux_backend_url_is_the_flux_replica_list(
    cls: type[CommonSettings], value: str, urls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX_BACKEND_URL", value)
    assert cls(_env_file=None).flux_service_urls == urls  # type: ignore[attr-defined]


def test_the_meshforge_flux_urls_win_over_the_spec_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_BACKEND_URL", "http://spec:1")
    monkeypatch.setenv("MESHFORGE_FLUX_SERVICE_URLS", "http://mine:1")
    assert ImageSettings(_env_file=None).flux_service_urls == ["http://mine:1"]
    monkeypatch.setenv("MESHFORGE_FLUX_SERVICE_URLS", "")  # set, though empty: still wins
    assert ImageSettings(_env_file=None).flux_service_urls == []


def test_use_image_stub_selects_the_procedural_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_IMAGE_STUB", "true")
    settings = FluxSettings(_env_file=None)
    assert settings.use_image_stub and settings.flux_backend == "procedural"


def test_the_meshforge_flux_backend_wins_over_use_image_stub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_IMAGE_STUB", "true")
    monkeypatch.setenv("MESHFORGE_FLUX_BACKEND", "diffusers")
    assert FluxSettings(_env_file=None).flux_backend == "diffusers"
    assert FluxSettings(_env_file=None, flux_backend="diffusers").flux_backend == "diffusers"


@pytest.mark.parametrize("configured", [None, "diffusers"])
def test_use_image_stub_false_leaves_the_configured_backend(
    configured: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USE_IMAGE_STUB", "false")
    if configured:
        monkeypatch.setenv("MESHFORGE_FLUX_BACKEND", configured)
    assert FluxSettings(_env_file=None).flux_backend == (configured or "procedural")


def test_the_environment_wins_over_the_env_file_whatever_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MESHFORGE_FLUX_MODEL=from/dotenv\nMESHFORGE_LOG_LEVEL=DEBUG\n")
    assert FluxSettings(_env_file=env_file).flux_model == "from/dotenv"
    monkeypatch.setenv("FLUX_MODEL", "from/environment")
    settings = FluxSettings(_env_file=env_file)
    assert (settings.flux_model, settings.log_level) == ("from/environment", "DEBUG")


# --- values and validators -----------------------------------------------------------------------------


def test_replica_urls_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFORGE_FLUX_SERVICE_URLS", "http://gpu0:8000/, http://gpu1:8000")
    assert DispatcherSettings(_env_file=None).flux_service_urls == ["http://gpu0:8000", "http://gpu1:8000"]


def test_replica_urls_accept_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFORGE_RECONSTRUCTION_SERVICE_URLS", '["http://gpu4:8000", "http://gpu5:8000"]')
    urls = DispatcherSettings(_env_file=None).reconstruction_service_urls
    assert urls == ["http://gpu4:8000", "http://gpu5:8000"]


def test_quality_tiers_can_be_overridden_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFORGE_TIERS", SMALL_TIERS)
    assert DispatcherSettings(_env_file=None).tier(QualityTier.standard).views == 4
    assert ImageSettings(_env_file=None).tier(QualityTier.high).voxel_resolution == 128


def test_a_partial_tiers_override_is_merged_over_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFORGE_TIERS", '{"high": {"target_faces": 150000}}')
    settings = DispatcherSettings(_env_file=None)
    high, default_high = settings.tier(QualityTier.high), DEFAULT_TIERS[QualityTier.high]
    assert high.target_faces == 150_000
    assert high.model_dump(exclude={"target_faces"}) == default_high.model_dump(exclude={"target_faces"})
    assert settings.tier(QualityTier.standard) == DEFAULT_TIERS[QualityTier.standard]
    assert DispatcherSettings(_env_file=None, tiers=DEFAULT_TIERS).tier(QualityTier.high).views == 8


@pytest.mark.parametrize(
    ("tiers", "named"),
    [
        ('{"high": {"target_face": 1}}', "tiers.high.target_face"),
        ('{"high": {"views": 3}}', "tiers.high.views"),
        ('{"ultra": {"views": 8}}', 'unknown tier "ultra"'),
        ('{"high": 5}', 'tier "high" must be a JSON object'),
    ],
)
def test_a_bad_tiers_override_stops_start_up_naming_the_field(
    tiers: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHFORGE_TIERS", tiers)
    load_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            settings_or_exit("dispatcher", DispatcherSettings)
    finally:
        load_settings.cache_clear()
    message = str(stopped.value.code)
    assert message.startswith("dispatcher cannot start: MESHFORGE_TIERS")
    assert named in message and "\n" not in message


def test_constraints_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFORGE_FLUX_MAX_BATCH", "17")
    with pytest.raises(ValidationError, match="flux_max_batch"):
        FluxSettings(_env_file=None)
    with pytest.raises(ValidationError, match="dispatcher_concurrency"):
        DispatcherSettings(_env_file=None, dispatcher_concurrency=0)


def test_load_settings_reads_each_class_once(monkeypatch: pytest.MonkeyPatch) -> None:
    load_settings.cache_clear()
    try:
        monkeypatch.setenv("MESHFORGE_FLUX_SERVICE_PORT", "40001")
        flux = load_settings(FluxSettings)
        monkeypatch.setenv("MESHFORGE_FLUX_SERVICE_PORT", "40002")
        assert load_settings(FluxSettings) is flux and flux.flux_service_port == 40001
        assert isinstance(load_settings(ImageSettings), ImageSettings)
        load_settings.cache_clear()
        assert load_settings(FluxSettings).flux_service_port == 40002
    finally:
        load_settings.cache_clear()


def test_is_settings_variable_covers_the_prefix_and_the_spec_names() -> None:
    assert is_settings_variable("MESHFORGE_ANYTHING") and is_settings_variable("flux_backend_url")
    assert not is_settings_variable("PATH") and not is_settings_variable("FLUX_BACKEND")


# --- storage paths -------------------------------------------------------------------------------------


def test_shared_folders_default_under_the_data_dir_and_move_one_by_one(tmp_path: Path) -> None:
    settings = CommonSettings(data_dir=tmp_path, outputs_dir=tmp_path / "elsewhere")
    assert settings.inputs_path == (tmp_path / "inputs").resolve()
    assert settings.outputs_path == (tmp_path / "elsewhere").resolve()


def test_image_paths_must_stay_inside_inputs(tmp_path: Path) -> None:
    storage = Storage(CommonSettings(data_dir=tmp_path))
    assert storage.input_image("uploads/a/00.png") == (tmp_path / "inputs/uploads/a/00.png").resolve()
    for escape in ("../outputs/x.glb", "/etc/passwd", "uploads/../../secret"):
        with pytest.raises(InvalidInput, match="outside inputs/"):
            storage.input_image(escape)


def test_files_passed_between_services_must_be_in_shared_folders(tmp_path: Path) -> None:
    storage = Storage(ImageSettings(data_dir=tmp_path))
    assert storage.shared_file(str(tmp_path / "cache/jobs/1/raw.glb")).name == "raw.glb"
    with pytest.raises(InvalidInput, match="shared storage"):
        storage.shared_file("/etc/passwd")
    with pytest.raises(InvalidInput):
        storage.shared_file("cache/relative.glb")


def test_the_schemas_view_counts_are_the_camera_sets() -> None:
    from meshforge.geometry.views import VIEW_SETS
    from meshforge.schemas import CANONICAL_VIEW_COUNTS

    assert tuple(VIEW_SETS) == CANONICAL_VIEW_COUNTS


def test_a_process_started_with_a_bad_setting_says_so_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    env.update(MESHFORGE_DATA_DIR=str(tmp_path), MESHFORGE_TIERS='{"high": {"views": 3}}')
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.dispatcher"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "dispatcher cannot start: MESHFORGE_TIERS: tiers.high.views: Input should be 1, 4 or 8"
    ]
