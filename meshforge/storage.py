"""The shared storage folders (models/, inputs/, outputs/, cache/) and safe paths inside them."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from meshforge.cancellation import check_job_id, commit_point
from meshforge.errors import InvalidInput, StorageFull
from meshforge.settings import CommonSettings


class Storage:
    def __init__(self, settings: CommonSettings) -> None:
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

    def master_path(self, job_id: str) -> Path:
        """The GLB kept beside a finished job's asset, when the asset is not GLB itself, from which the
        job is converted into its other formats (``asset_path(job_id, suffix)`` each, once asked for)."""
        return self.outputs / f"{job_id}.master.glb"

    def discard_job_outputs(self, job_id: str) -> list[Path]:
        """Delete every ``outputs/{job_id}.*`` file (a cancelled or expired job's: its asset, preview,
        master GLB and every conversion of it); returns what was deleted."""
        check_job_id(job_id)  # never a glob pattern
        removed = []
        for path in self.outputs.glob(f"{job_id}.*"):
            if path.is_file() and path.name.split(".", 1)[0] == job_id:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def input_image(self, path: str) -> Path:
        """Resolve a user-given image path; it must stay inside inputs/ (relative to it or absolute)."""
        return self.inside(self.inputs, path, what="image path")

    def shared_file(self, path: str, roots: tuple[Path, ...] | None = None) -> Path:
        """Resolve a path passed between services; it must lie in one of ``roots`` (default: inputs/,
        cache/, outputs/), symbolic links followed."""
        roots = roots or (self.inputs, self.cache, self.outputs)
        candidate = Path(path)
        if candidate.is_absolute():
            resolved = _resolve(candidate, path)
            if any(_is_within(resolved, root) for root in roots):
                return resolved
        names = ", ".join(f"{root.name}/" for root in roots)
        raise InvalidInput(f'"{path}" is not inside the shared storage folders ({names})')

    @staticmethod
    def inside(root: Path, path: str, *, what: str) -> Path:
        candidate = Path(path)
        resolved = _resolve(candidate if candidate.is_absolute() else root / candidate, path)
        if not _is_within(resolved, root):
            raise InvalidInput(f'{what} "{path}" is outside {root.name}/: only files under it can be used')
        return resolved


# The longest file or folder name Linux file systems accept (NAME_MAX, in bytes).
MAX_NAME_BYTES = 255


def _resolve(path: Path, shown: str) -> Path:
    """``path`` with symbolic links followed; a name no file system accepts (a NUL, an over-long
    component) is invalid input, not an internal error (resolving does not touch a missing file, so a
    too-long name would only fail later, when the service writes it)."""
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in path.parts):
        raise InvalidInput(
            f'"{shown[:200]}" is not a usable path: a name in it is over {MAX_NAME_BYTES} bytes'
        )
    try:
        return path.resolve()
    except (ValueError, OSError):
        raise InvalidInput(f'"{shown[:200]}" is not a usable path') from None


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(name: str) -> str:
    return (
        f"no space left on the server (writing {name}): nothing was kept; "
        "try again later, once the operator has freed disk space"
    )


@contextlib.contextmanager
def disk_full_as_error(name: str) -> Iterator[None]:
    """Turn "no space left on device" (or over quota) while writing ``name`` into ``StorageFull``,
    whose message a job shows, instead of an internal error."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE_ERRNOS:
            raise StorageFull(disk_full_message(name)) from exc
        raise


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> Path:
    """Write via a temporary file in the same folder and rename it, so readers never see half a file.

    ``mode`` is applied because mkstemp's private 0600 would hide the file from the other services. A
    full disk raises ``StorageFull``; the temporary file is removed and ``path`` keeps what it held.
    ``durable=False`` skips the fsync, for a job's intermediate files: after a crash the job runs
    again and writes them anew, so they need not survive one, and the fsync cost each job up to ms.
    """
    with disk_full_as_error(path.name):
        return _atomic_write_bytes(path, data, mode, durable)


def _atomic_write_bytes(path: Path, data: bytes, mode: int, durable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        with commit_point():  # a cancelled job's file never appears (meshforge.cancellation)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
