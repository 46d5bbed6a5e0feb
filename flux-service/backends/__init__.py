"""Text-to-image backends, chosen by MESHFORGE_FLUX_BACKEND."""

from __future__ import annotations

from flux_service.backends.base import ImageGenerator
from meshforge.errors import InvalidInput

AVAILABLE = ("procedural",)


def load_backend(name: str) -> ImageGenerator:
    if name == "procedural":
        from flux_service.backends.procedural import ProceduralShapes

        return ProceduralShapes()
    raise InvalidInput(
        f'unknown flux-service backend "{name}": this build offers {", ".join(AVAILABLE)} '
        "(FLUX.1 through diffusers is not wired in yet; see docs/backends.md)"
    )
