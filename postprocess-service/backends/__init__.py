"""Post-processing backends, chosen by MESHFORGE_POSTPROCESS_BACKEND."""

from __future__ import annotations

from meshforge.errors import InvalidInput
from postprocess_service.backends.base import MeshFinisher

AVAILABLE = ("trimesh",)


def load_backend(name: str) -> MeshFinisher:
    if name == "trimesh":
        from postprocess_service.backends.trimesh_finisher import TrimeshFinisher

        return TrimeshFinisher()
    raise InvalidInput(f'unknown post-processing backend "{name}": this build offers {", ".join(AVAILABLE)}')
