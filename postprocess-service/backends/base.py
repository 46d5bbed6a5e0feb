"""The post-processing stage's backend interface: raw mesh file → final asset file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class MeshFinisher(Protocol):
    name: str
    formats: frozenset[str]

    def finish(
        self, mesh_path: Path, output_format: str, target_faces: int | None, output_path: Path
    ) -> dict[str, Any]:
        """Clean, reduce and export; returns at least ``vertices`` and ``faces`` of the written asset."""
        ...
