"""Text-to-image backends, chosen by MESHFORGE_FLUX_BACKEND."""

from __future__ import annotations

import logging

from flux_service.backends.base import ImageGenerator
from meshforge.errors import InvalidInput
from meshforge.settings import Settings

AVAILABLE = ("procedural", "diffusers")
log = logging.getLogger(__name__)


def load_backend(settings: Settings) -> ImageGenerator:
    """The configured backend, loaded and ready; model backends raise ModelNotFound without weights."""
    name = settings.flux_backend
    if name == "procedural":
        from flux_service.backends.procedural import ProceduralShapes

        return ProceduralShapes()
    if name == "diffusers":
        from flux_service.backends.diffusers_flux import DiffusersFlux

        backend = DiffusersFlux.from_settings(settings)
        if not settings.flux_compile:  # a compiled model would compile for the warm-up size only
            log.info("%s warmed up in %.2f s", backend.name, backend.warm_up())
        return backend
    raise InvalidInput(
        f'unknown flux-service backend "{name}": use one of {", ".join(AVAILABLE)} (see docs/flux.md)'
    )
