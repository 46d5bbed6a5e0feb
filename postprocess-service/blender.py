"""FBX export through headless Blender, one worker process per file.

Blender (the ``bpy`` wheel) lives in its own virtualenv because it pins numpy<2, and runs as a separate
process because bpy is heavy, keeps global state, is not thread-safe, and can crash: a crash then fails
one export with a message instead of taking the service down. ``blender_worker.py`` is that process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from meshforge.cancellation import check_cancelled, commit_point, on_cancelled
from meshforge.errors import BackendError, UnsupportedFormat

WORKER = Path(__file__).with_name("blender_worker.py")
# The worker's markers for its summary line (stdout) and its own failure message (stderr); it cannot
# import them from here.
RESULT_PREFIX = "MESHFORGE_RESULT "
WORKER_MESSAGE_PREFIX = "blender_worker: "
STDERR_TAIL_LINES = 8
_PROBE = "import importlib.util, sys; sys.exit(importlib.util.find_spec('bpy') is None)"
_known_good: set[Path] = set()


def blender_available(blender_python: Path) -> bool:
    """Whether ``blender_python`` exists and can import bpy (checked without importing it: ~50 ms).

    Only a positive answer is remembered, so installing Blender later needs no restart; the service asks
    before every FBX request, so the answer must be cheap.
    """
    python = Path(blender_python).absolute()
    if not (python.is_file() and os.access(python, os.X_OK)):
        return False
    if python in _known_good:
        return True
    try:
        probe = subprocess.run(
            [str(python), "-I", "-c", _PROBE], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if probe.returncode == 0:
        _known_good.add(python)
    return probe.returncode == 0


def export_fbx(glb_path: Path, fbx_path: Path, *, blender_python: Path, timeout: float) -> dict[str, Any]:
    """Convert ``glb_path`` to ``fbx_path`` with its textures embedded; returns the worker's summary.

    The FBX appears under its name only once complete: the worker writes it into a temporary folder
    beside it under the same name (the file records that name as its own; no folder is recorded), and
    it is renamed into place.
    """
    _require_blender(blender_python)
    fbx_path = Path(fbx_path)
    fbx_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=fbx_path.parent, prefix=f".{fbx_path.name}.") as folder:
        staged = Path(folder) / fbx_path.name
        summary = _run_worker(
            blender_python, [str(glb_path), str(staged)], timeout, f'convert "{Path(glb_path).name}" to FBX'
        )
        if not staged.is_file():
            raise BackendError(f'Blender reported success but wrote no FBX for "{Path(glb_path).name}"')
        os.chmod(staged, 0o644)  # readable by the other services, like every other asset
        with commit_point():  # a cancelled job's FBX never appears (meshforge.cancellation)
            os.replace(staged, fbx_path)
    return summary


def inspect_fbx(fbx_path: Path, *, blender_python: Path, timeout: float) -> dict[str, Any]:
    """Re-import ``fbx_path`` in Blender and describe it: counts, images, bounds, axes and unit."""
    _require_blender(blender_python)
    return _run_worker(blender_python, ["--check", str(fbx_path)], timeout, f'read "{Path(fbx_path).name}"')


def _require_blender(blender_python: Path) -> None:
    if not blender_available(blender_python):
        raise UnsupportedFormat(
            f"FBX export needs headless Blender, which is not installed here (no Python with bpy at "
            f"{blender_python}): run scripts/bootstrap, which creates .venv-blender, or set "
            "MESHFORGE_BLENDER_PYTHON to a Python that has the bpy wheel."
        )


def _run_worker(blender_python: Path, args: list[str], timeout: float, what: str) -> dict[str, Any]:
    # -I: the service's PYTHONPATH (pointing at numpy 2) must not leak into Blender's interpreter.
    command = [str(Path(blender_python).absolute()), "-I", str(WORKER), *args]
    try:
        worker = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except OSError as exc:
        raise BackendError(f"Blender could not be started ({blender_python}): {exc}") from exc
    # An export has no safe point of its own to stop at: a cancelled job's Blender is killed at once,
    # so its replica is free now rather than when the export would have ended.
    on_cancelled(worker.kill)
    with worker:
        try:
            stdout, stderr = worker.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, stderr = worker.communicate()
            raise BackendError(
                f"Blender did not {what} within {timeout:g} s and was stopped{_tail(stderr)}"
            ) from None
    check_cancelled()  # killed because the job was cancelled: that, not a Blender failure
    if worker.returncode != 0:
        raise BackendError(f"Blender failed to {what} ({_exit_reason(worker.returncode)}){_reason(stderr)}")
    return _summary(stdout, what)


def _summary(stdout: str, what: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise BackendError(f"Blender finished but did not report on its work to {what}")


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _reason(stderr: str) -> str:
    """The worker's own one-line message when it wrote one, else the last lines Blender printed."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(WORKER_MESSAGE_PREFIX):
            return ": " + line.removeprefix(WORKER_MESSAGE_PREFIX)
    return _tail(stderr)


def _tail(stderr: str | bytes | None) -> str:
    if isinstance(stderr, bytes):  # TimeoutExpired carries bytes even when run() decodes text
        stderr = stderr.decode("utf-8", errors="replace")
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return ": " + "\n".join(lines[-STDERR_TAIL_LINES:]) if lines else ""
