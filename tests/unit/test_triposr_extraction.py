"""Mesh extraction and input preparation for TripoSR, on the tiny model whose density field is a ball."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.measure import marching_cubes

torch = pytest.importorskip("torch")

from meshforge.errors import InvalidInput  # noqa: E402
from meshforge.geometry.normalise import FOREGROUND_RATIO  # noqa: E402
from reconstruction_service.triposr.extraction import (  # noqa: E402
    density_grid,
    extract_mesh,
    grid_axis,
    surface_from_grid,
)
from reconstruction_service.triposr.model import TSR, load_pretrained  # noqa: E402
from reconstruction_service.triposr.preprocess import condition_image  # noqa: E402
from tests.tiny_triposr import SURFACE_RADIUS, THRESHOLD, build_tiny_triposr  # noqa: E402

RESOLUTION = 40


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[TSR, torch.Tensor]:
    model = load_pretrained(build_tiny_triposr(tmp_path_factory.mktemp("models")))
    with torch.inference_mode():
        planes = model(torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0)))
    return model, planes[0]


def test_the_grid_spans_the_renderer_radius_end_to_end() -> None:
    axis = grid_axis(5, 0.87, torch.device("cpu"))
    assert axis[0].item() == pytest.approx(-0.87) and axis[-1].item() == pytest.approx(0.87)
    assert torch.allclose(axis, torch.linspace(-0.87, 0.87, 5))


def test_density_queried_in_chunks_equals_one_query(tiny: tuple[TSR, torch.Tensor]) -> None:
    model, planes = tiny
    whole = density_grid(model.decoder, planes, model.config.renderer, RESOLUTION, RESOLUTION**3)
    chunked = density_grid(model.decoder, planes, model.config.renderer, RESOLUTION, 999)
    assert torch.equal(whole, chunked)


def test_marching_cubes_near_the_surface_only_gives_the_full_grids_result(
    tiny: tuple[TSR, torch.Tensor],
) -> None:
    model, planes = tiny
    density = density_grid(model.decoder, planes, model.config.renderer, RESOLUTION, 8192)
    density = density * (1.0 + 0.3 * torch.rand(density.shape, generator=torch.Generator().manual_seed(1)))
    vertices, faces = surface_from_grid(density, THRESHOLD, 0.87)
    full_vertices, full_faces, _, _ = marching_cubes(density.numpy(), THRESHOLD, gradient_direction="ascent")
    assert np.array_equal(faces, full_faces)
    assert np.allclose(vertices, full_vertices / (RESOLUTION - 1) * 1.74 - 0.87, atol=1e-6)


def test_a_ball_shaped_field_gives_a_closed_ball_with_outward_normals_and_colours(
    tiny: tuple[TSR, torch.Tensor],
) -> None:
    model, planes = tiny
    mesh = extract_mesh(
        model.decoder,
        planes,
        model.config.renderer,
        resolution=RESOLUTION,
        threshold=THRESHOLD,
        chunk_size=4096,
    )
    assert mesh.is_watertight
    assert mesh.volume > 0  # normals point outward, toward lower density
    radii = np.linalg.norm(mesh.vertices, axis=1)
    voxel = 2 * 0.87 / (RESOLUTION - 1)
    assert np.abs(radii - SURFACE_RADIUS * 0.87).max() < voxel
    colours = mesh.visual.vertex_colors
    assert colours.shape == (len(mesh.vertices), 4) and (colours[:, 3] == 255).all()


def test_a_field_that_never_reaches_the_threshold_is_reported_not_meshed(
    tiny: tuple[TSR, torch.Tensor],
) -> None:
    model, planes = tiny
    with pytest.raises(InvalidInput) as refused:
        extract_mesh(
            model.decoder, planes, model.config.renderer, resolution=24, threshold=1e9, chunk_size=4096
        )
    assert "no surface" in refused.value.message
    assert "MESHFORGE_TRIPOSR_MC_THRESHOLD" in refused.value.message


def test_the_conditioning_image_is_the_object_centred_at_85_percent_on_half_grey() -> None:
    image = np.zeros((200, 300, 4), dtype=np.uint8)
    image[20:60, 200:280] = (200, 40, 40, 255)  # an object off in a corner, on transparency
    condition = condition_image(image, 128)
    assert condition.shape == (128, 128, 3) and condition.dtype == np.uint8
    ys, xs = np.nonzero(np.any(condition != 127, axis=-1))
    assert abs((xs.min() + xs.max() + 1) / 2 - 64) <= 1 and abs((ys.min() + ys.max() + 1) / 2 - 64) <= 1
    assert (xs.max() + 1 - xs.min()) / 128 == pytest.approx(FOREGROUND_RATIO, abs=0.02)
    assert (condition[0, 0] == 127).all()  # 0.5 grey, written to 8 bits as upstream does


def test_an_image_without_an_object_is_refused() -> None:
    with pytest.raises(InvalidInput):
        condition_image(np.zeros((64, 64, 4), dtype=np.uint8), 64)


def test_tiny_model_folder_holds_the_two_published_files(tmp_path: Path) -> None:
    folder = build_tiny_triposr(tmp_path)
    assert folder == tmp_path / "stabilityai" / "TripoSR"
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "model.ckpt"]
