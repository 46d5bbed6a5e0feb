"""The triposr reconstruction backend: production loading path, view choice, canonical frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

torch = pytest.importorskip("torch")

from meshforge.errors import ModelNotFound  # noqa: E402
from meshforge.geometry.views import OBJECT_EXTENT, VIEWS_BY_NAME, view_set  # noqa: E402
from meshforge.settings import ReconstructionSettings  # noqa: E402
from reconstruction_service.backends import BACKENDS, load_backend  # noqa: E402
from reconstruction_service.backends.triposr import (  # noqa: E402
    TRIPOSR_TO_CANONICAL,
    TripoSR,
    to_canonical,
)
from tests.tiny_triposr import build_tiny_triposr  # noqa: E402


def views_with_object(count: int) -> list[np.ndarray]:
    images = []
    for index in range(count):
        image = np.zeros((96, 96, 4), dtype=np.uint8)
        image[30:70, 25 + index : 70 + index] = (40 * index, 200, 90, 255)
        images.append(image)
    return images


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> TripoSR:
    data = tmp_path_factory.mktemp("data")
    build_tiny_triposr(data / "models")
    return TripoSR(ReconstructionSettings(data_dir=data, triposr_mc_resolution=32))


def test_triposr_is_offered_and_a_missing_model_says_where_it_looked(tmp_path: Path) -> None:
    assert "triposr" in BACKENDS.names
    with pytest.raises(ModelNotFound) as missing:
        TripoSR(ReconstructionSettings(data_dir=tmp_path))
    assert str(tmp_path / "models" / "stabilityai" / "TripoSR") in missing.value.message
    assert "scripts/download-models stabilityai/TripoSR" in missing.value.message
    assert "MESHFORGE_TRIPOSR_MODEL_PATH" in missing.value.message


def test_load_backend_builds_it_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_tiny_triposr(tmp_path / "elsewhere")
    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(
        "MESHFORGE_TRIPOSR_MODEL_PATH", str(tmp_path / "elsewhere" / "stabilityai" / "TripoSR")
    )
    monkeypatch.setenv("MESHFORGE_RECONSTRUCTION_BACKEND", "triposr")
    loaded = load_backend(ReconstructionSettings(_env_file=None))
    assert loaded.name == "triposr"


def test_one_image_gives_a_coloured_mesh_in_the_canonical_frame(backend: TripoSR) -> None:
    mesh, detail = backend.reconstruct(views_with_object(1), list(view_set(1)), resolution=96)
    assert mesh.is_watertight and mesh.volume > 0
    assert mesh.extents.max() == pytest.approx(OBJECT_EXTENT)
    assert np.allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-9)
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    assert detail["used_view"] == "front" and "note" not in detail
    assert (detail["mc_resolution"], detail["mc_threshold"], detail["dtype"]) == (32, 25.0, "float32")


def test_with_several_views_the_front_view_is_used_and_the_result_says_so(backend: TripoSR) -> None:
    views = [VIEWS_BY_NAME["right"], VIEWS_BY_NAME["front"], VIEWS_BY_NAME["back"], VIEWS_BY_NAME["left"]]
    mesh, detail = backend.reconstruct(views_with_object(4), views, resolution=96)
    assert len(mesh.faces) > 0
    assert detail["used_view"] == "front"
    assert (
        detail["note"]
        == "TripoSR reconstructs from one image: it used the front view and ignored the other 3"
    )


def test_triposr_axes_map_onto_the_canonical_ones_by_a_rotation() -> None:
    """TripoSR: toward the input camera +x, image right +y, up +z. Canonical: front +Z, right +X, up +Y."""
    assert np.allclose(TRIPOSR_TO_CANONICAL @ [1, 0, 0], [0, 0, 1])
    assert np.allclose(TRIPOSR_TO_CANONICAL @ [0, 1, 0], [1, 0, 0])
    assert np.allclose(TRIPOSR_TO_CANONICAL @ [0, 0, 1], [0, 1, 0])
    assert np.linalg.det(TRIPOSR_TO_CANONICAL) == pytest.approx(1.0)


def test_a_tall_object_facing_triposrs_camera_comes_out_tall_and_facing_front() -> None:
    post = trimesh.creation.box(extents=(0.2, 0.2, 0.8))  # tall along TripoSR's up (+z)
    nose = trimesh.creation.box(extents=(0.3, 0.1, 0.1))
    nose.apply_translation((0.2, 0.0, 0.0))  # sticks out toward the camera (+x)
    mesh = trimesh.util.concatenate([post, nose])
    mesh.visual.vertex_colors = (10, 20, 30, 255)
    canonical = to_canonical(mesh)
    width, height, depth = canonical.extents
    assert height == pytest.approx(OBJECT_EXTENT) and width < height and depth < height
    post_z, nose_z = canonical.vertices[: len(post.vertices), 2], canonical.vertices[len(post.vertices) :, 2]
    assert nose_z.max() > post_z.max()  # the nose is on the front (+Z) side
    assert canonical.volume == pytest.approx(mesh.volume * (OBJECT_EXTENT / 0.8) ** 3)


def test_triposr_advertises_one_view_at_its_conditioning_size(backend: TripoSR) -> None:
    assert backend.capabilities.max_views == 1
    assert backend.capabilities.image_size == backend.model.config.cond_image_size
