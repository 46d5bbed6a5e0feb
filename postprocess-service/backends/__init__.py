"""Post-processing backends, chosen by MESHFORGE_POSTPROCESS_BACKEND."""

from __future__ import annotations

from meshforge.errors import InvalidInput
from meshforge.settings import Settings
from postprocess_service.backends.base import MeshFinisher

AVAILABLE = ("trimesh",)


def load_backend(settings: Settings) -> MeshFinisher:
    name = settings.postprocess_backend
    if name == "trimesh":
        from postprocess_service.backends.trimesh_finisher import TrimeshFinisher

        return TrimeshFinisher(settings)
    raise InvalidInput(f'unknown post-processing backend "{name}": this build offers {", ".join(AVAILABLE)}')
