"""Post-processing backends, chosen by MESHFORGE_POSTPROCESS_BACKEND."""

from __future__ import annotations

from meshforge.backends import BackendRegistry
from meshforge.settings import PostprocessSettings
from postprocess_service.backends.base import MeshFinisher

BACKENDS: BackendRegistry[PostprocessSettings, MeshFinisher] = BackendRegistry(
    "post-processing backend", "MESHFORGE_POSTPROCESS_BACKEND", "docs/export.md"
)


@BACKENDS.register("trimesh")
def _trimesh(settings: PostprocessSettings) -> MeshFinisher:
    from postprocess_service.backends.trimesh_finisher import TrimeshFinisher

    return TrimeshFinisher(settings)


def load_backend(settings: PostprocessSettings) -> MeshFinisher:
    return BACKENDS.load(settings.postprocess_backend, settings)
