"""Settings, storage paths and the documentation of both."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshforge.errors import InvalidInput
from meshforge.schemas import QualityTier
from meshforge.settings import Settings
from meshforge.storage import Storage
from tests.fleet import REPO


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Architecture")]
    for name in Settings.model_fields:
        short = f"_{name.upper()}"
        assert f"MESHFORGE_{name.upper()}" in table or f"`{short}`" in table or f"{short}`" in table, name


def test_replica_urls_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFORGE_FLUX_SERVICE_URLS", "http://gpu0:8000/, http://gpu1:8000")
    assert Settings().flux_service_urls == ["http://gpu0:8000", "http://gpu1:8000"]


def test_replica_urls_accept_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHFORGE_RECONSTRUCTION_SERVICE_URLS", '["http://gpu4:8000", "http://gpu5:8000"]')
    assert Settings().reconstruction_service_urls == ["http://gpu4:8000", "http://gpu5:8000"]


def test_quality_tiers_can_be_overridden_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MESHFORGE_TIERS",
        '{"standard": {"views": 4, "image_size": 128, "voxel_resolution": 64, "target_faces": 5000,'
        ' "texture_size": 512}, "high": {"views": 8, "image_size": 512, "voxel_resolution": 128,'
        ' "target_faces": 50000, "texture_size": 2048}}',
    )
    assert Settings().tier(QualityTier.standard).views == 4


def test_shared_folders_default_under_the_data_dir_and_move_one_by_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, outputs_dir=tmp_path / "elsewhere")
    assert settings.inputs_path == (tmp_path / "inputs").resolve()
    assert settings.outputs_path == (tmp_path / "elsewhere").resolve()


def test_image_paths_must_stay_inside_inputs(tmp_path: Path) -> None:
    storage = Storage(Settings(data_dir=tmp_path))
    assert storage.input_image("uploads/a/00.png") == (tmp_path / "inputs/uploads/a/00.png").resolve()
    for escape in ("../outputs/x.glb", "/etc/passwd", "uploads/../../secret"):
        with pytest.raises(InvalidInput, match="outside inputs/"):
            storage.input_image(escape)


def test_files_passed_between_services_must_be_in_shared_folders(tmp_path: Path) -> None:
    storage = Storage(Settings(data_dir=tmp_path))
    assert storage.shared_file(str(tmp_path / "cache/jobs/1/raw.glb")).name == "raw.glb"
    with pytest.raises(InvalidInput, match="shared storage"):
        storage.shared_file("/etc/passwd")
    with pytest.raises(InvalidInput):
        storage.shared_file("cache/relative.glb")


def test_the_schemas_view_counts_are_the_camera_sets() -> None:
    from meshforge.geometry.views import VIEW_SETS
    from meshforge.schemas import CANONICAL_VIEW_COUNTS

    assert tuple(VIEW_SETS) == CANONICAL_VIEW_COUNTS
