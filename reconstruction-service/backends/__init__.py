"""Reconstruction backends, chosen per replica by MESHFORGE_RECONSTRUCTION_BACKEND."""

from __future__ import annotations

from meshforge.backends import BackendRegistry
from meshforge.settings import ReconstructionSettings
from reconstruction_service.backends.base import Reconstructor

BACKENDS: BackendRegistry[ReconstructionSettings, Reconstructor] = BackendRegistry(
    "reconstruction backend", "MESHFORGE_RECONSTRUCTION_BACKEND", "docs/backends.md"
)


@BACKENDS.register("visual_hull")
def _visual_hull(settings: ReconstructionSettings) -> Reconstructor:
    from reconstruction_service.backends.visual_hull import VisualHull

    return VisualHull()


@BACKENDS.register("triposr")
def _triposr(settings: ReconstructionSettings) -> Reconstructor:
    # Imported here: it imports torch, which the CPU-only stack does not install.
    from reconstruction_service.backends.triposr import TripoSR

    return TripoSR(settings)


@BACKENDS.register("instantmesh")
def _instantmesh(settings: ReconstructionSettings) -> Reconstructor:
    # Imported here: it imports torch, diffusers and transformers, which the CPU-only stack does not install.
    from reconstruction_service.backends.instantmesh import InstantMesh

    return InstantMesh(settings)


def load_backend(settings: ReconstructionSettings) -> Reconstructor:
    return BACKENDS.load(settings.reconstruction_backend, settings)
