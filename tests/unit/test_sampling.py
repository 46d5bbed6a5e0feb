"""Bilinear sampling (meshforge.geometry.sampling) against scipy's map_coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from meshforge.geometry.sampling import bilinear

RNG = np.random.default_rng(7)
IMAGE = RNG.random((40, 30)).astype(np.float32)
# Points all over the image and beyond it, plus the exact edges and pixel centres.
ROWS = np.concatenate([RNG.random(5000) * 50 - 5, [0.0, 39.0, -1e-6, 39.000001, 12.0]])
COLUMNS = np.concatenate([RNG.random(5000) * 40 - 5, [0.0, 29.0, 3.0, 3.0, 29.5]])


@pytest.mark.parametrize(("outside", "mode"), [("nearest", "nearest"), ("zero", "constant")])
def test_bilinear_reads_what_map_coordinates_reads(outside: str, mode: str) -> None:
    expected = ndimage.map_coordinates(IMAGE, [ROWS, COLUMNS], order=1, mode=mode, cval=0.0)
    sampled = bilinear(IMAGE, ROWS, COLUMNS, outside=outside)  # type: ignore[arg-type]
    np.testing.assert_allclose(sampled, expected, atol=1e-5)


def test_every_channel_is_read_with_the_same_weights() -> None:
    image = RNG.random((40, 30, 4)).astype(np.float32)
    sampled = bilinear(image, ROWS, COLUMNS, outside="zero")
    assert sampled.shape == (len(ROWS), 4)
    for channel in range(4):
        expected = ndimage.map_coordinates(image[..., channel], [ROWS, COLUMNS], order=1, mode="constant")
        np.testing.assert_allclose(sampled[:, channel], expected, atol=1e-5)


def test_float32_images_are_sampled_in_float32() -> None:
    assert bilinear(IMAGE, ROWS, COLUMNS, outside="nearest").dtype == np.float32
    assert bilinear(IMAGE.astype(np.float64), ROWS, COLUMNS, outside="nearest").dtype == np.float64


def test_an_image_smaller_than_two_pixels_a_side_is_refused() -> None:
    with pytest.raises(ValueError, match="2×2"):
        bilinear(np.zeros((1, 5), np.float32), ROWS, COLUMNS, outside="zero")
