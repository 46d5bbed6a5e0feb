"""View normalisation: matte, crop to the object, centre, fixed foreground ratio, neutral background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image_service.matting.flood_fill import FloodFillMatting
from image_service.matting.onnx_segmentation import OnnxSegmentation
from meshforge.errors import InvalidInput
from meshforge.geometry.normalise import FOREGROUND_RATIO, normalise_views
from meshforge.geometry.views import BACKGROUND_RGB
from tests.tiny_matting import build_tiny_matting_model

OBJECT_RGB = (200, 40, 40)


def photo(box: tuple[int, int, int, int], size: tuple[int, int] = (300, 200)) -> Image.Image:
    """An RGB photo (no alpha) with a solid object at box = (left, top, right, bottom)."""
    width, height = size
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (235, 235, 230)
    left, top, right, bottom = box
    image[top:bottom, left:right] = OBJECT_RGB
    return Image.fromarray(image)


def busy_photo(box: tuple[int, int, int, int]) -> Image.Image:
    rows, cols = np.mgrid[:200, :300]
    checker = ((rows // 20 + cols // 20) % 2).astype(bool)
    image = np.where(checker[..., None], np.uint8(50), np.uint8(210)).repeat(3, axis=2).astype(np.uint8)
    left, top, right, bottom = box
    image[top:bottom, left:right] = OBJECT_RGB
    return Image.fromarray(image)


def object_box(rgba: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(rgba[..., 3] > 127)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def reach(rgba: np.ndarray) -> float:
    """Furthest object pixel edge from the centre, over the half-size."""
    left, top, right, bottom = object_box(rgba)
    half = rgba.shape[0] / 2
    return max(half - left, right - half, half - top, bottom - half) / half


def test_single_photo_is_cropped_centred_and_scaled_to_the_foreground_ratio() -> None:
    (view,) = normalise_views([photo((20, 30, 100, 70))], 256)  # an 80×40 box near the top left
    assert view.shape == (256, 256, 4) and view.dtype == np.uint8
    left, top, right, bottom = object_box(view)
    assert abs((left + right) / 2 - 128) <= 1 and abs((top + bottom) / 2 - 128) <= 1
    assert reach(view) == pytest.approx(FOREGROUND_RATIO, abs=0.02)
    assert (right - left) / (bottom - top) == pytest.approx(2.0, rel=0.05)  # aspect kept


def test_background_is_the_neutral_grey_with_zero_alpha_and_the_object_keeps_its_colour() -> None:
    (view,) = normalise_views([photo((100, 50, 200, 150))], 128)
    assert (view[0, 0] == (*BACKGROUND_RGB, 0)).all()
    assert set(np.unique(view[..., 3])) == {0, 255}
    assert (view[64, 64, :3] == OBJECT_RGB).all()


def test_foreground_ratio_is_a_parameter() -> None:
    (view,) = normalise_views([photo((100, 50, 200, 150))], 200, foreground_ratio=0.5)
    assert reach(view) == pytest.approx(0.5, abs=0.02)


def test_output_size_is_fixed_whatever_the_input_size() -> None:
    for size in ((64, 48), (300, 200), (1000, 1500)):
        w, h = size
        (view,) = normalise_views([photo((w // 4, h // 4, w // 2, h // 2), size)], 96)
        assert view.shape == (96, 96, 4)


def test_a_view_set_is_scaled_together_so_relative_sizes_survive() -> None:
    # Two views of one object: 100 px wide from the front, 50 px from the side, both centred.
    front, side = photo((100, 50, 200, 150)), photo((125, 50, 175, 150))
    a, b = normalise_views([front, side], 200)
    wa = object_box(a)[2] - object_box(a)[0]
    wb = object_box(b)[2] - object_box(b)[0]
    assert wa / wb == pytest.approx(2.0, rel=0.05)
    assert max(reach(a), reach(b)) == pytest.approx(FOREGROUND_RATIO, abs=0.02)


def test_a_view_set_keeps_the_canonical_placement_unless_asked_to_centre_each_view() -> None:
    off_centre, centred = photo((20, 60, 120, 140)), photo((100, 60, 200, 140))
    kept = normalise_views([off_centre, centred], 200)
    assert object_box(kept[0])[0] < object_box(kept[1])[0]  # still left of centre
    moved = normalise_views([off_centre, centred], 200, centre_each=True)
    assert object_box(moved[0]) == object_box(moved[1])


def test_own_transparency_is_the_matte_even_when_a_matting_backend_is_given() -> None:
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)
    rgba[..., :3] = 128  # object the colour of the background: only alpha can tell
    rgba[30:70, 40:60, 3] = 255

    def refuse(_: np.ndarray) -> np.ndarray:
        raise AssertionError("matting must not run on an image with its own alpha")

    (view,) = normalise_views([Image.fromarray(rgba)], 100, matting=refuse)
    left, top, right, bottom = object_box(view)
    assert (bottom - top) / (right - left) == pytest.approx(2.0, rel=0.05)


def test_the_matting_backend_decides_for_opaque_images() -> None:
    calls = []

    def centre_square(image: np.ndarray) -> np.ndarray:
        calls.append(image.shape)
        alpha = np.zeros(image.shape[:2], dtype=np.float32)
        alpha[40:60, 40:60] = 1.0
        return alpha

    (view,) = normalise_views([photo((0, 0, 50, 100), (100, 100))], 100, matting=centre_square)
    assert calls == [(100, 100, 4)]
    left, top, right, bottom = object_box(view)
    assert right - left == bottom - top  # the backend's square, not the photo's red rectangle


def test_specks_in_a_matte_are_dropped_before_cropping() -> None:
    def matte_with_speck(image: np.ndarray) -> np.ndarray:
        alpha = np.zeros(image.shape[:2], dtype=np.float32)
        alpha[40:80, 40:80] = 1.0
        alpha[2, 2] = 1.0  # one stray pixel in a corner would otherwise set the crop
        return alpha

    (view,) = normalise_views([photo((40, 40, 80, 80), (120, 120))], 120, matting=matte_with_speck)
    assert reach(view) == pytest.approx(FOREGROUND_RATIO, abs=0.02)
    left, _, right, _ = object_box(view)
    assert abs((left + right) / 2 - 60) <= 1


def test_an_empty_matte_says_no_object_was_found() -> None:
    with pytest.raises(InvalidInput, match="no object"):
        normalise_views([photo((10, 10, 20, 20))], 64, matting=lambda image: np.zeros(image.shape[:2]))


def test_flood_fill_fails_on_a_busy_background_where_the_onnx_backend_succeeds(tmp_path: Path) -> None:
    box = (100, 60, 180, 140)  # 80×80
    image = busy_photo(box)
    with pytest.raises(InvalidInput, match="touches every edge"):
        normalise_views([image], 128, matting=FloodFillMatting())
    model = OnnxSegmentation(build_tiny_matting_model(tmp_path / "matting" / "u2net.onnx"))
    (view,) = normalise_views([image], 128, matting=model)
    left, top, right, bottom = object_box(view)
    assert (right - left) / (bottom - top) == pytest.approx(1.0, abs=0.08)
    assert reach(view) == pytest.approx(FOREGROUND_RATIO, abs=0.03)
    assert (view[64, 64, :3] == OBJECT_RGB).all()
    assert (view[2, 2] == (*BACKGROUND_RGB, 0)).all()  # the checkerboard is gone
