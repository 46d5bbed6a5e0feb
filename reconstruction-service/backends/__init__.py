"""Reconstruction backends, chosen per replica by MESHFORGE_RECONSTRUCTION_BACKEND."""

from __future__ import annotations

from meshforge.errors import InvalidInput
from reconstruction_service.backends.base import Reconstructor

AVAILABLE = ("visual_hull", "triposr")


def load_backend(name: str) -> Reconstructor:
    if name == "visual_hull":
        from reconstruction_service.backends.visual_hull import VisualHull

        return VisualHull()
    if name == "triposr":
        # Imported here: it imports torch, which the CPU-only stack does not install.
        from reconstruction_service.backends.triposr import TripoSR

        return TripoSR()
    raise InvalidInput(
        f'unknown reconstruction backend "{name}": this build offers {", ".join(AVAILABLE)} '
        "(see docs/backends.md)"
    )
