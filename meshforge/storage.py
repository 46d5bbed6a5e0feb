"""The shared storage folders (models/, inputs/, outputs/, cache/) and safe paths inside them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from meshforge.errors import InvalidInput
from meshforge.settings import Settings


class Storage:
    def __init__(self, settings: Settings) -> None:
        self.models = settings.models_path
        self.inputs = settings.inputs_path
        self.outputs = settings.outputs_path
        self.cache = settings.cache_path

    def ensure(self) -> None:
        for folder in (self.models, self.inputs, self.outputs, self.cache):
            folder.mkdir(parents=True, exist_ok=True)

    def job_inputs(self, job_id: str) -> Path:
        return self.inputs / "jobs" / job_id

    def job_cache(self, job_id: str) -> Path:
        return self.cache / "jobs" / job_id

    def asset_path(self, job_id: str, suffix: str) -> Path:
        return self.outputs / f"{job_id}{suffix}"

    def preview_path(self, job_id: str) -> Path:
        return self.outputs / f"{job_id}.preview.png"

    def input_image(self, path: str) -> Path:
        """Resolve a user-given image path; it must stay inside inputs/ (relative to it or absolute)."""
        return self.inside(self.inputs, path, what="image path")

    def shared_file(self, path: str) -> Path:
        """Resolve a path passed between services; it must lie in one of the shared folders."""
        candidate = Path(path)
        for root in (self.inputs, self.cache, self.outputs):
            if candidate.is_absolute() and _is_within(candidate.resolve(), root):
                return candidate.resolve()
        raise InvalidInput(f'"{path}" is not inside the shared storage folders (inputs/, cache/, outputs/)')

    @staticmethod
    def inside(root: Path, path: str, *, what: str) -> Path:
        candidate = Path(path)
        resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
        if not _is_within(resolved, root):
            raise InvalidInput(f'{what} "{path}" is outside {root.name}/: only files under it can be used')
        return resolved


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> Path:
    """Write via a temporary file in the same folder and rename it, so readers never see half a file.

    ``mode`` is applied because mkstemp's private 0600 would hide the file from the other services.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
