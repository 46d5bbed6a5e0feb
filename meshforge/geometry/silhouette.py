"""Foreground masks (silhouettes) of single views.

A normalised view carries the object's matte in its alpha channel, and that is used as is. An uploaded
photo may be plain RGB on a plain background instead; its background is then found by flooding from the
image border over pixels close to the border's median colour. Only background-like pixels *connected to
the border* count as background, so parts of the object that happen to share the background colour
(a grey button on a grey jacket) stay foreground as long as the object encloses them. The price is that
real see-through holes (the inside of a ring) are filled too; a matte in the alpha channel avoids that.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from meshforge.errors import InvalidInput

ALPHA_THRESHOLD = 127
# Holes and specks are judged relative to the image area so the same rule works at 256² and 1024².
HOLE_AREA_FRACTION = 0.0005
SPECK_AREA_FRACTION = 0.0005
_MIN_AREA_PX = 4

# 8-connectivity: a diagonal step still joins two pixels of background (or of object).
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def foreground_mask(image: np.ndarray, *, tolerance: float = 30.0) -> np.ndarray:
    """The object's silhouette in ``image`` as an (H, W) bool array.

    ``image`` is (H, W, 3) RGB or (H, W, 4) RGBA, uint8. An alpha channel that is not fully opaque is
    taken as the matte (alpha > 127). Otherwise the background colour is the median of the border
    pixels, and background is every pixel within ``tolerance`` (Euclidean RGB distance) of it that is
    connected to the border through such pixels. Small holes are filled and tiny specks dropped.

    Raises ``InvalidInput`` if no object is found or the object touches all four borders.
    """
    rgb, alpha = _split_channels(image)
    if alpha is not None and alpha.min() < 255:
        mask = alpha > ALPHA_THRESHOLD
    else:
        mask = ~_border_connected_background(rgb, tolerance)
    return clean_mask(mask)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """A raw object mask made usable as a silhouette: small holes filled, tiny specks dropped.

    Raises ``InvalidInput`` if no object is left or the object touches all four borders.
    """
    mask = _drop_specks(_fill_small_holes(mask))
    _check_mask(mask)
    return mask


def _split_channels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    array = np.asarray(image)
    if array.ndim == 2:  # greyscale: treat as RGB with equal channels
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InvalidInput(f"an image must be RGB or RGBA (H, W, 3 or 4); got shape {array.shape}")
    if array.shape[0] < 3 or array.shape[1] < 3:
        raise InvalidInput(f"an image of {array.shape[1]}×{array.shape[0]} pixels is too small to use")
    rgb = array[:, :, :3].astype(np.float32)
    alpha = array[:, :, 3] if array.shape[2] == 4 else None
    return rgb, alpha


def _border_pixels(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]], axis=0)


def _border_connected_background(rgb: np.ndarray, tolerance: float) -> np.ndarray:
    background_rgb = np.median(_border_pixels(rgb), axis=0)
    background_like = np.linalg.norm(rgb - background_rgb, axis=2) <= tolerance
    labels, _ = ndimage.label(background_like, structure=_EIGHT_CONNECTED)
    border_labels = np.unique(_border_pixels(labels[:, :, None])[:, 0])
    border_labels = border_labels[border_labels != 0]
    return np.isin(labels, border_labels)


def _area_threshold(mask: np.ndarray, fraction: float) -> int:
    return max(_MIN_AREA_PX, round(fraction * mask.size))


def _fill_small_holes(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed background regions smaller than a small fraction of the image (matting noise)."""
    holes = ndimage.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    labels, count = ndimage.label(holes)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes < _area_threshold(mask, HOLE_AREA_FRACTION)
    small[0] = False
    filled: np.ndarray = mask | small[labels]
    return filled


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Remove isolated foreground blobs too small to be part of the object (dust, noise, compression)."""
    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= _area_threshold(mask, SPECK_AREA_FRACTION)
    keep[0] = False
    kept: np.ndarray = keep[labels]
    return kept


def _check_mask(mask: np.ndarray) -> None:
    if not mask.any():
        raise InvalidInput(
            "no object could be found in an image: it looks like plain background. Upload views that "
            "show the object on a plain background, or with transparency around it."
        )
    touches_all = mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    if touches_all:
        raise InvalidInput(
            "the object touches every edge of an image, so its outline cannot be found. Upload views "
            "that show the whole object with some background around it."
        )
