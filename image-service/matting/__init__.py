"""Matting backends: an image → the object's alpha matte (float 0..1), chosen by MESHFORGE_MATTING_BACKEND."""

from __future__ import annotations

from image_service.matting.base import Matting
from meshforge.backends import BackendRegistry
from meshforge.settings import ImageSettings

BACKENDS: BackendRegistry[ImageSettings, Matting] = BackendRegistry(
    "matting backend", "MESHFORGE_MATTING_BACKEND", "docs/images.md"
)


@BACKENDS.register("flood_fill")
def _flood_fill(settings: ImageSettings) -> Matting:
    from image_service.matting.flood_fill import FloodFillMatting

    return FloodFillMatting()


@BACKENDS.register("onnx")
def _onnx(settings: ImageSettings) -> Matting:
    from image_service.matting.onnx_segmentation import OnnxSegmentation

    return OnnxSegmentation.from_settings(settings)


def load_matting(settings: ImageSettings) -> Matting:
    """The configured backend, loaded once at start-up (a missing model is a start-up error)."""
    return BACKENDS.load(settings.matting_backend, settings)
