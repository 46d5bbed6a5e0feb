"""A trimesh mesh's visual, typed as what the caller knows it to be.

trimesh declares ``Trimesh.visual`` as ``ColorVisuals | TextureVisuals | None``. A mesh built from
vertices and faces (with or without ``vertex_colors``) carries ColorVisuals, and a mesh whose texture
was found carries TextureVisuals. These functions say so to the type checker; they check nothing at
run time, so code behaves exactly as if it had read ``mesh.visual`` itself.
"""

from __future__ import annotations

from typing import cast

import trimesh
from trimesh.visual import ColorVisuals, TextureVisuals


def colour_visual(mesh: trimesh.Trimesh) -> ColorVisuals:
    """``mesh.visual`` of a mesh coloured per vertex or per face, or not coloured at all."""
    return cast(ColorVisuals, mesh.visual)


def texture_visual(mesh: trimesh.Trimesh) -> TextureVisuals:
    """``mesh.visual`` of a UV-mapped mesh."""
    return cast(TextureVisuals, mesh.visual)
