"""sRGB ⇄ linear conversion of 8-bit colours.

Images and our vertex colours are sRGB; glTF's COLOR_0 is linear, so GLB export converts, and
whoever reads a GLB's vertex colours back as display colours converts the other way.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(colours: np.ndarray) -> np.ndarray:
    """uint8 RGB(A) in sRGB → uint8 RGB(A) in linear light; alpha is left alone."""
    out = np.array(colours, dtype=np.uint8, copy=True)
    c = out[..., :3] / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    out[..., :3] = np.round(linear * 255.0)
    return out


def linear_to_srgb(colours: np.ndarray) -> np.ndarray:
    """uint8 RGB(A) in linear light → uint8 RGB(A) in sRGB; alpha is left alone."""
    out = np.array(colours, dtype=np.uint8, copy=True)
    c = out[..., :3] / 255.0
    srgb = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    out[..., :3] = np.round(srgb * 255.0)
    return out
