"""Normalised views: matted, on the neutral background, scaled together, at a fixed size.

A normalised view is an RGBA PNG: RGB composited on BACKGROUND_RGB, alpha = the object's matte.
A set of canonical views is scaled *together*, about the image centre, so the views stay consistent
with one another (scaling the images equals moving every camera closer: reconstruction's adaptive
bounds absorb it). A single image is cropped to the object and centred, as single-view models expect.
Views drawn by a text-to-image model place the object wherever the model chose, so for those each view
can be centred on its object first (``centre_each``) and the set is then scaled together.

The matte comes from the image's own transparency when it has some; otherwise from ``matting``, any
function image → alpha (float 0..1), such as the image service's flood-fill or ONNX segmentation
backends. Without one, the border flood fill of ``meshforge.geometry.silhouette`` is used.

Memory: each image is first box-reduced to the working size (``working_side``: twice the output size,
so the final resample still averages), and all float work is float32 at that size. A 7000×7000 photo is
matted at 1024×1024 (for a 512² output), not at 49 megapixels (docs/security.md has the measured figures).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from meshforge.errors import InvalidInput

# The mask clean-up rules are the silhouette module's, so matted views and reconstruction agree.
from meshforge.geometry.silhouette import clean_mask, foreground_mask
from meshforge.geometry.views import BACKGROUND_RGB
from meshforge.images import reduce_to

FOREGROUND_RATIO = 0.85
MIN_WORKING_SIDE = 512  # small outputs still matte at a size where specks and holes are judged well
MattingFn = Callable[[np.ndarray], np.ndarray]


def working_side(size: int) -> int:
    """The longer side views are reduced to before matting, for an output of ``size``²."""
    return max(2 * size, MIN_WORKING_SIDE)


def to_rgba(image: Image.Image) -> np.ndarray:
    """Any Pillow image as (H, W, 4) uint8, keeping alpha when the image has one."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    rgba = np.asarray(image.convert("RGBA")).copy()
    if not has_alpha:
        rgba[..., 3] = 255
    return rgba


def matte(rgba: np.ndarray, matting: MattingFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(RGB composited on the neutral background, matte as float 0..1).

    Own transparency wins; otherwise ``matting`` (default: border flood fill) gives a soft matte, whose
    mask (> 0.5) is cleaned like a silhouette: small holes filled, specks dropped.
    """
    if (rgba[..., 3] < 255).any():
        mask = foreground_mask(rgba)
        alpha = np.where(mask, np.maximum(rgba[..., 3], 1).astype(np.float32) / 255, np.float32(0))
    elif matting is None:
        alpha = foreground_mask(rgba[..., :3]).astype(np.float32)
    else:
        alpha = _cleaned(np.asarray(matting(rgba), dtype=np.float32))
    return _composite(rgba, alpha), alpha


def _cleaned(soft: np.ndarray) -> np.ndarray:
    if soft.ndim != 2:
        raise InvalidInput(f"a matte must be one value per pixel; got shape {soft.shape}")
    mask = clean_mask(soft > 0.5)
    # Inside the mask keep the soft edge; filled holes become fully object.
    return np.where(mask, np.where(soft > 0.5, np.clip(soft, 0, 1), np.float32(1)), np.float32(0))


def _composite(rgba: np.ndarray, alpha2d: np.ndarray) -> np.ndarray:
    alpha = alpha2d[..., None]
    background = np.array(BACKGROUND_RGB, dtype=np.float32)
    composite: np.ndarray = rgba[..., :3].astype(np.float32) * alpha + background * (1 - alpha)
    return composite


def _square_canvas(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad a non-square image to a square around its centre with background."""
    h, w = alpha.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    canvas = np.empty((side, side, 3), dtype=np.float32)
    canvas[:] = BACKGROUND_RGB
    canvas[top : top + h, left : left + w] = rgb
    canvas_alpha = np.zeros((side, side), dtype=np.float32)
    canvas_alpha[top : top + h, left : left + w] = alpha
    return canvas, canvas_alpha


def _reach(alpha: np.ndarray) -> float:
    """How far from the centre the object reaches, as a fraction of the half-size (0..1)."""
    ys, xs = np.nonzero(alpha > 0.5)
    half = alpha.shape[0] / 2.0
    return float(max(np.abs(xs + 0.5 - half).max(), np.abs(ys + 0.5 - half).max()) / half)


def _zoom(rgb: np.ndarray, alpha: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Scale about the centre by ``scale`` and resample to ``size``², padding with background."""
    side = alpha.shape[0]
    crop = side / scale  # the source window that fills the output
    offset = (side - crop) / 2.0
    box = (offset, offset, offset + crop, offset + crop)
    rgba = np.dstack([rgb, alpha * 255]).clip(0, 255).astype(np.uint8)
    out = Image.fromarray(rgba, mode="RGBA").transform(
        (size, size),
        Image.Transform.EXTENT,
        box,
        resample=Image.Resampling.BICUBIC,
        fillcolor=(*BACKGROUND_RGB, 0),
    )
    result = np.asarray(out).copy()
    result[..., 3] = np.where(result[..., 3] >= 128, 255, 0)
    result[result[..., 3] == 0, :3] = BACKGROUND_RGB
    return result


def _centre_on_object(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(alpha > 0.5)
    shift_y = round(alpha.shape[0] / 2 - (ys.min() + ys.max() + 1) / 2)
    shift_x = round(alpha.shape[1] / 2 - (xs.min() + xs.max() + 1) / 2)
    moved = np.empty_like(rgb)
    moved[:] = BACKGROUND_RGB
    moved_alpha = np.zeros_like(alpha)
    src = (
        slice(max(0, -shift_y), alpha.shape[0] - max(0, shift_y)),
        slice(max(0, -shift_x), alpha.shape[1] - max(0, shift_x)),
    )
    dst = (
        slice(max(0, shift_y), alpha.shape[0] - max(0, -shift_y)),
        slice(max(0, shift_x), alpha.shape[1] - max(0, -shift_x)),
    )
    moved[dst] = rgb[src]
    moved_alpha[dst] = alpha[src]
    return moved, moved_alpha


def normalise_views(
    images: list[Image.Image],
    size: int,
    *,
    matting: MattingFn | None = None,
    foreground_ratio: float = FOREGROUND_RATIO,
    centre_each: bool = False,
) -> list[np.ndarray]:
    """Normalise a set of views to ``size``² RGBA (see module docstring).

    The object reaches ``foreground_ratio`` of the half-frame in its widest view. A single image is
    always cropped to its object and centred; ``centre_each`` does the same for every view of a set.
    Raises InvalidInput when no object is found in a view.
    """
    side = working_side(size)
    matted = [_square_canvas(*matte(to_rgba(reduce_to(image, side)), matting)) for image in images]
    if len(matted) == 1 or centre_each:
        matted = [_centre_on_object(rgb, alpha) for rgb, alpha in matted]
    reach = max(_reach(alpha) for _, alpha in matted)
    scale = foreground_ratio / reach
    return [_zoom(rgb, alpha, scale, size) for rgb, alpha in matted]
