"""The offline reconstruction backend: multi-view silhouette carving (no model, no GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh

from meshforge.geometry.views import CanonicalView
from meshforge.schemas import Capabilities
from reconstruction_service.visual_hull import reconstruct


class VisualHull:
    name = "visual_hull"
    capabilities = Capabilities(max_views=8)  # every canonical view carves; the tier sets the size

    def reconstruct(
        self, images: list[np.ndarray], views: list[CanonicalView], resolution: int
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        mesh = reconstruct(images, views, resolution=resolution)
        detail: dict[str, Any] = {"views": [v.name for v in views], "voxel_resolution": resolution}
        if len(views) == 1:
            detail["fidelity"] = (
                "low: one image only, so the object is assumed to look the same from the front, back and "
                "both sides; give 4 or 8 views for a faithful shape"
            )
        return mesh, detail
