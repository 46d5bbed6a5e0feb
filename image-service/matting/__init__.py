"""Matting backends: an image → the object's alpha matte (float 0..1), chosen by MESHFORGE_MATTING_BACKEND."""

from __future__ import annotations

from image_service.matting.base import Matting
from meshforge.errors import InvalidInput
from meshforge.settings import Settings

AVAILABLE = ("flood_fill", "onnx")


def load_matting(settings: Settings) -> Matting:
    """The configured backend, loaded once at start-up (a missing model is a start-up error)."""
    if settings.matting_backend == "flood_fill":
        from image_service.matting.flood_fill import FloodFillMatting

        return FloodFillMatting()
    if settings.matting_backend == "onnx":
        from image_service.matting.onnx_segmentation import OnnxSegmentation

        return OnnxSegmentation.from_settings(settings)
    raise InvalidInput(
        f'unknown matting backend "{settings.matting_backend}": use one of {", ".join(AVAILABLE)} '
        "(MESHFORGE_MATTING_BACKEND; see docs/images.md)"
    )
