"""Checking GLB assets with the Khronos glTF-Validator (tools/gltf-validator) from tests.

The validator is the reference implementation of the glTF specification; a file it finds errors in may
load in one viewer and fail in the next, so every GLB meshforge writes must pass it with 0 errors.
It ships only as JavaScript, so this runs it under node, one process for all the files given.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOOL_DIR = Path(__file__).resolve().parent.parent / "tools" / "gltf-validator"
SCRIPT = TOOL_DIR / "validate.mjs"
# Generous: the validator checks every index and vertex, which takes seconds for a large mesh.
TIMEOUT_S = 300


@dataclass(frozen=True)
class ValidationReport:
    """One file's result: issue counts by severity, and the first errors, then warnings, in detail."""

    file: str
    errors: int
    warnings: int
    infos: int
    hints: int
    messages: list[dict]  # {"code", "message", "pointer"}, at most 20

    def describe(self) -> str:
        """The file, its counts and one line per message, as a person reading a failure wants it."""
        lines = [f"{self.file}: {self.errors} errors, {self.warnings} warnings"]
        lines += [f"  {m['code']} at {m['pointer'] or '/'}: {m['message']}" for m in self.messages]
        return "\n".join(lines)


def validate_glb(*paths: Path) -> list[ValidationReport]:
    """One report per path, in order. RuntimeError if the validator is not installed or misbehaves."""
    if not paths:
        raise ValueError("validate_glb needs at least one path")
    node = _node()
    args = [str(p) for p in paths]
    try:
        done = subprocess.run(
            [node, str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"the glTF validator took over {TIMEOUT_S} s on {args}") from exc
    # 0: all valid, 1: some file has errors; anything else means the tool itself failed.
    lines = done.stdout.splitlines()
    if done.returncode not in (0, 1) or len(lines) != len(paths):
        raise RuntimeError(
            f"the glTF validator failed (exit {done.returncode}) on {args}:\n{done.stderr or done.stdout}"
        )
    return [ValidationReport(**json.loads(line)) for line in lines]


def assert_valid_glb(path: Path) -> ValidationReport:
    """The report for ``path``; AssertionError listing the validator's messages if it has any error."""
    (report,) = validate_glb(path)
    # Raised, not asserted: a bare assert would vanish under python -O and pass a broken file.
    if report.errors:
        raise AssertionError(f"the glTF validator rejects the GLB:\n{report.describe()}")
    return report


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed, so GLBs cannot be validated: run scripts/bootstrap")
    if not (TOOL_DIR / "node_modules" / "gltf-validator").is_dir():
        raise RuntimeError(
            f"the glTF validator is not installed in {TOOL_DIR / 'node_modules'}: run scripts/bootstrap "
            f"(it runs npm ci --prefix tools/gltf-validator)"
        )
    return node
