"""Text-to-image backends, chosen by MESHFORGE_FLUX_BACKEND."""

from __future__ import annotations

import logging

from flux_service.backends.base import ImageGenerator
from meshforge.backends import BackendRegistry
from meshforge.settings import FluxSettings

log = logging.getLogger(__name__)
BACKENDS: BackendRegistry[FluxSettings, ImageGenerator] = BackendRegistry(
    "flux-service backend", "MESHFORGE_FLUX_BACKEND", "docs/flux.md"
)


@BACKENDS.register("procedural")
def _procedural(settings: FluxSettings) -> ImageGenerator:
    from flux_service.backends.procedural import ProceduralShapes

    return ProceduralShapes()


@BACKENDS.register("diffusers")
def _diffusers(settings: FluxSettings) -> ImageGenerator:
    # Imported here: it imports torch and diffusers, which the CPU-only stack does not install.
    from flux_service.backends.diffusers_flux import DiffusersFlux

    backend = DiffusersFlux.from_settings(settings)
    if not settings.flux_compile:  # a compiled model would compile for the warm-up size only
        log.info("%s warmed up in %.2f s", backend.name, backend.warm_up())
    return backend


def load_backend(settings: FluxSettings) -> ImageGenerator:
    """The configured backend, loaded and ready; model backends raise ModelNotFound without weights."""
    return BACKENDS.load(settings.flux_backend, settings)
