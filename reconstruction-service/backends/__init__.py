"""Reconstruction backends, chosen per replica by MESHFORGE_RECONSTRUCTION_BACKEND."""

from __future__ import annotations

from meshforge.errors import InvalidInput
from reconstruction_service.backends.base import Reconstructor

AVAILABLE = ("visual_hull",)


def load_backend(name: str) -> Reconstructor:
    if name == "visual_hull":
        from reconstruction_service.backends.visual_hull import VisualHull

        return VisualHull()
    raise InvalidInput(
        f'unknown reconstruction backend "{name}": this build offers {", ".join(AVAILABLE)} '
        "(TripoSR is not wired in yet; see docs/backends.md)"
    )
