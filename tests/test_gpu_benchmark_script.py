"""`python -m benchmarks.gpu`, the one command for a GPU machine, on the CPU: with --quick it runs each
model benchmark's smallest case (the one tests/test_benchmarks.py runs), each in a process of its own,
and writes one JSON file of the machine and every benchmark's rows; stdout is the Markdown for
docs/performance.md. The GPU run itself (full size, random weights) needs a GPU and is not run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.gpu import BENCHMARKS
from meshforge.settings import is_settings_variable
from tests.fleet import REPO
from tests.test_benchmarks import CASES, table_rows

FLUX_ROW = {"size", "batch", "seconds_per_image", "transformer_seconds_per_image", "tflop_per_image"}
TRIPOSR_ROW = {
    "resolution",
    "dtype",
    "chunk",
    "seconds",
    "model_seconds",
    "mesh_seconds",
    "faces",
    "peak_gib",
}


def run_gpu_script(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", *args],
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=400,
    )


def no_nan(constant: str) -> Any:
    raise AssertionError(f"{constant} in the JSON: not valid JSON")


def test_quick_cpu_run_writes_one_json_of_the_machine_and_each_benchmarks_rows(tmp_path: Path) -> None:
    out = tmp_path / "tmp.json"
    done = run_gpu_script("--quick", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    report = json.loads(out.read_text(), parse_constant=no_nan)

    assert report["schema"] == "meshforge.gpu-benchmarks/1" and report["quick"] is True
    assert report["install"] is None  # no --wheels: nothing installed
    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["gpu"] is None and machine["date"]
    assert machine["torch"] and machine["packages"]["torch"] == machine["torch"]
    assert [b["name"] for b in report["benchmarks"]] == [b.name for b in BENCHMARKS]

    results = {b["name"]: b for b in report["benchmarks"]}
    for name, keys in (("flux", FLUX_ROW), ("triposr", TRIPOSR_ROW)):
        result = results[name]
        assert result["status"] == "ok", result
        assert tuple(result["args"]) == CASES[name].args  # the smallest case, as tests/test_benchmarks.py's
        assert len(result["rows"]) == CASES[name].rows and keys <= set(result["rows"][0]), result
        assert result["table"].splitlines()[2].startswith(CASES[name].row_start), result["table"]
        assert result["seconds"] <= result["budget_s"]
    assert results["triposr"]["rows"][0]["peak_gib"] is None  # no GPU memory on the CPU
    instantmesh = results["instantmesh"]
    if not (REPO / "benchmarks" / "instantmesh.py").exists():
        assert instantmesh["status"] == "skipped"
        assert instantmesh["reason"] == "benchmarks/instantmesh.py is not present"
    else:
        assert instantmesh["status"] in {"ok", "skipped"}, instantmesh

    # stdout: one section per benchmark, with each table that ran, for docs/performance.md.
    assert done.stdout.startswith("## Model benchmarks, "), done.stdout
    for benchmark in BENCHMARKS:
        assert f"### {benchmark.title}: `python -m benchmarks.{benchmark.name}" in done.stdout, done.stdout
    assert results["flux"]["table"] in done.stdout and results["triposr"]["table"] in done.stdout
    assert len(table_rows(done.stdout)) == CASES["flux"].rows  # the first table: FLUX's


def test_no_time_left_skips_every_benchmark_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "out" / "gpu.json"  # its folder is made
    done = run_gpu_script("--quick", "--device", "cpu", "--budget-s", "5", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {b["status"] for b in report["benchmarks"]} == {"skipped"}
    assert all(b["reason"] == "no time left of the 5 s budget" for b in report["benchmarks"])


def test_what_a_wheel_folder_installs_is_the_model_extras_without_torch() -> None:
    done = run_gpu_script("--print-requirements")
    assert done.returncode == 0, done.stderr
    names = {re.split(r"[\[<>=!~;]", line)[0] for line in done.stdout.split()}
    assert {"diffusers", "transformers", "accelerate", "safetensors", "trimesh", "scikit-image"} <= names
    assert "torch" not in names  # the GPU machine's own build stays
