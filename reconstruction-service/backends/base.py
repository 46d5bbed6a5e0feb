"""The reconstruction stage's backend interface: views → mesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import trimesh

from meshforge.geometry.views import CanonicalView
from meshforge.schemas import Capabilities


class Reconstructor(Protocol):
    """Loaded once per process (one per GPU for model backends) and kept hot."""

    name: str  # the name it is configured by (MESHFORGE_RECONSTRUCTION_BACKEND)
    capabilities: Capabilities  # how many views, and what size, it makes use of (advertised in /health)

    def reconstruct(
        self, images: list[np.ndarray], views: list[CanonicalView], resolution: int
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        """Images are normalised RGBA views; returns the mesh and details worth reporting."""
        ...


@runtime_checkable
class DrawsViews(Protocol):
    """A backend that draws views of its own on the way to the mesh (InstantMesh: Zero123++'s six). The
    service gives it the job's folder for them; it names the files it wrote in its detail's
    ``generated_views``, which the job's record lists (orchestrator/records.py)."""

    def reconstruct_keeping_views(
        self, images: list[np.ndarray], views: list[CanonicalView], resolution: int, folder: Path
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]: ...
