"""The control plane (API and dispatcher) runs in the light image: no numpy, trimesh, torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "scipy", "trimesh", "torch")
BLOCKER = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ImportError(f"the control plane imported {{name}}")
sys.meta_path.insert(0, Refuse())
import {module}
"""


@pytest.mark.parametrize("module", ["orchestrator.app", "orchestrator.dispatcher"])
def test_control_plane_imports_none_of_the_stage_libraries(module: str) -> None:
    code = BLOCKER.format(heavy=set(HEAVY), module=module)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
