"""Foreground masks: alpha mattes as given, plain-background photos by flooding from the border."""

from __future__ import annotations

import numpy as np
import pytest

from meshforge.errors import InvalidInput
from meshforge.geometry.silhouette import foreground_mask
from meshforge.geometry.views import BACKGROUND_RGB

SIZE = 128


def _canvas(rgb: tuple[int, int, int] = BACKGROUND_RGB) -> np.ndarray:
    image = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    image[:] = rgb
    return image


def _disc(radius: float, centre: tuple[float, float] = (SIZE / 2, SIZE / 2)) -> np.ndarray:
    rows, cols = np.mgrid[:SIZE, :SIZE] + 0.5
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def _with_alpha(rgb: np.ndarray, matte: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.where(matte, 255, 0).astype(np.uint8)])


def test_alpha_channel_is_the_matte() -> None:
    matte = _disc(30)
    # The RGB says nothing useful (uniform): only alpha can give the outline.
    mask = foreground_mask(_with_alpha(_canvas(), matte))
    np.testing.assert_array_equal(mask, matte)


def test_alpha_above_half_counts_as_object() -> None:
    image = _with_alpha(_canvas(), _disc(30))
    image[..., 3] = np.where(_disc(30), 200, 40)
    np.testing.assert_array_equal(foreground_mask(image), _disc(30))


def test_fully_opaque_alpha_falls_back_to_colour_matting() -> None:
    rgb = _canvas()
    rgb[_disc(25)] = (200, 40, 40)
    opaque = np.dstack([rgb, np.full((SIZE, SIZE), 255, dtype=np.uint8)])
    np.testing.assert_array_equal(foreground_mask(opaque), _disc(25))


def test_rgb_photo_without_alpha_is_matted_by_border_flood_fill() -> None:
    # A white studio backdrop with sensor noise, not the canonical grey: the border median finds it.
    rng = np.random.default_rng(0)
    rgb = _canvas((245, 245, 240)).astype(np.int16) + rng.integers(-6, 7, size=(SIZE, SIZE, 3))
    rgb[_disc(35)] = (60, 90, 160)
    mask = foreground_mask(np.clip(rgb, 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(mask, _disc(35))


def test_mask_keeps_background_coloured_pixels_enclosed_by_the_object() -> None:
    # A red ring whose inside has exactly the background colour (a grey button on a red coat): it is
    # not connected to the border, so it stays part of the object.
    rgb = _canvas()
    ring = _disc(40) & ~_disc(20)
    rgb[ring] = (210, 30, 30)
    mask = foreground_mask(rgb)
    np.testing.assert_array_equal(mask, _disc(40))


def test_background_coloured_bay_open_to_the_border_is_background() -> None:
    rgb = _canvas()
    rgb[30:100, 30:100] = (30, 160, 60)
    rgb[55:75, 30:128] = BACKGROUND_RGB  # a slot cut in from the right edge
    mask = foreground_mask(rgb)
    assert not mask[60:70, 60:100].any()
    assert mask[35:50, 35:95].all()


def test_pixels_within_tolerance_of_the_background_are_background() -> None:
    rgb = _canvas()
    rgb[_disc(30)] = (150, 150, 150)  # 22 grey levels per channel from the background: distance ≈ 38
    assert foreground_mask(rgb, tolerance=30.0).sum() == _disc(30).sum()
    with pytest.raises(InvalidInput):
        foreground_mask(rgb, tolerance=45.0)


def test_small_holes_in_the_matte_are_filled_and_large_holes_kept() -> None:
    matte = _disc(45) & ~_disc(20)  # a ring: its hole is real
    matte[30:32, 60:62] = False  # a four-pixel matting error
    mask = foreground_mask(_with_alpha(_canvas(), matte))
    assert mask[30:32, 60:62].all()
    assert not mask[_disc(19)].any()


def test_tiny_specks_are_dropped() -> None:
    matte = _disc(30)
    matte[5:7, 5:7] = True  # dust: four pixels far from the object
    mask = foreground_mask(_with_alpha(_canvas(), matte))
    np.testing.assert_array_equal(mask, _disc(30))


def test_blank_image_raises_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="no object"):
        foreground_mask(_canvas())
    with pytest.raises(InvalidInput, match="no object"):
        foreground_mask(_with_alpha(_canvas((10, 200, 10)), np.zeros((SIZE, SIZE), dtype=bool)))


def test_object_touching_every_border_raises_invalid_input() -> None:
    matte = np.zeros((SIZE, SIZE), dtype=bool)
    matte[SIZE // 2 - 2 : SIZE // 2 + 3, :] = True  # a thick cross from edge to edge
    matte[:, SIZE // 2 - 2 : SIZE // 2 + 3] = True
    with pytest.raises(InvalidInput, match="every edge"):
        foreground_mask(_with_alpha(_canvas(), matte))


def test_object_touching_some_borders_is_accepted() -> None:
    matte = np.zeros((SIZE, SIZE), dtype=bool)
    matte[40:, 30:90] = True  # cut off at the bottom edge, like a photo of a vase on a table
    np.testing.assert_array_equal(foreground_mask(_with_alpha(_canvas(), matte)), matte)


@pytest.mark.parametrize("shape", [(SIZE, SIZE, 2), (SIZE, SIZE, 5), (SIZE,)])
def test_unusable_array_shapes_raise_invalid_input(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput):
        foreground_mask(np.zeros(shape, dtype=np.uint8))


def test_greyscale_image_is_matted_like_rgb() -> None:
    grey = np.full((SIZE, SIZE), 128, dtype=np.uint8)
    grey[_disc(30)] = 20
    np.testing.assert_array_equal(foreground_mask(grey), _disc(30))
