"""The post-processing stage's backend interface: raw mesh file → final asset file (+ preview)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from meshforge.schemas import Origin


@dataclass(frozen=True)
class FinishJob:
    mesh_path: Path
    output_path: Path
    output_format: str
    target_faces: int | None = None
    origin: Origin = Origin.bottom
    height_m: float | None = None
    texture_size: int = 1024
    preview_path: Path | None = None
    master_path: Path | None = None  # where to keep the mesh as GLB too (not for a GLB job: its asset is it)


class MeshFinisher(Protocol):
    name: str

    @property
    def formats(self) -> frozenset[str]:
        """The output formats this backend can write right now."""
        ...

    def finish(self, job: FinishJob) -> dict[str, Any]:
        """Clean, reduce, place, texture and export; returns at least ``vertices`` and ``faces``."""
        ...
