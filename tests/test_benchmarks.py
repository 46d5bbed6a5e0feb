"""Every benchmark runs: its smallest case, as `python -m benchmarks.X` on the CPU, exits 0 and prints its
table (or, for job_listing, its lines). The full runs are `make bench` (figures in docs/performance.md).

FLUX and TripoSR run with ``--cpu``: their tiny random models (tests/tiny_flux.py, tests/tiny_triposr.py),
never the full-size GPU build, even beside a GPU. benchmarks.soak is tested by tests/test_soak.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from meshforge.settings import is_settings_variable
from tests.fleet import REPO


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    rows: int  # data rows of its Markdown table
    row_start: str  # how the first data row begins


CASES = {
    "pipeline": Case(("--repeat", "1", "--burst", "0", "--cases", "1"), 1, "| a red cube | standard |"),
    "postprocess": Case(("--sizes", "50k"), 1, "| 50k | 50,"),
    "view_consistency": Case(
        ("--size", "64", "--views", "4", "--prompt", "a red cube"), 6, "| independent |"
    ),
    "flux": Case(
        ("--cpu", "--sizes", "64", "--batches", "1", "--steps", "1", "--repeats", "1"), 1, "| 64² | 1 |"
    ),
    "triposr": Case(("--cpu", "--runs", "1", "--resolutions", "32"), 1, "| 32 | float32 | 65536 |"),
    "instantmesh": Case(("--cpu", "--runs", "1", "--steps", "1"), 1, "| 1 | float32 | float32 |"),
    "image_memory": Case(("--size", "64"), 3, "| 7000×7000 PNG"),
}
LINES = {"job_listing": ("--counts", "10,30")}  # prints a line per count, no table
TESTED_ELSEWHERE = {
    "soak": "tests/test_soak.py",
    "control_plane": "tests/test_throughput_benchmarks.py",
    "pipelining": "tests/test_throughput_benchmarks.py",
    "gpu": "tests/test_gpu_benchmark_script.py",
}
# What the throughput benchmarks share: modules of benchmarks/, not benchmarks.
HELPERS = {"api_clients", "fleet_bench", "stage_backends", "stage_process"}


def make_bench_modules() -> list[str]:
    """The benchmarks `make bench` runs, in order."""
    target = re.search(r"^bench:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert target is not None, "the Makefile lost its bench target"
    return re.findall(r"-m benchmarks\.(\w+)", target[1])


def run_benchmark(name: str, args: tuple[str, ...]) -> str:
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=REPO,
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout


def table_rows(output: str) -> list[str]:
    """The data rows of the Markdown table in ``output`` (the lines after its |---| line)."""
    lines = output.splitlines()
    rule = next((i for i, line in enumerate(lines) if re.fullmatch(r"\|(-+:?\|)+", line)), None)
    assert rule is not None, f"no table in:\n{output}"
    assert lines[rule - 1].startswith("| "), "a table's rule follows its header"
    rows = []
    for line in lines[rule + 1 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_every_benchmark_has_a_smallest_case() -> None:
    modules = {path.stem for path in (REPO / "benchmarks").glob("*.py") if path.stem != "__init__"}
    assert modules - HELPERS == set(CASES) | set(LINES) | set(TESTED_ELSEWHERE)
    assert make_bench_modules() and set(make_bench_modules()) <= set(CASES) | set(TESTED_ELSEWHERE)


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=[pytest.mark.fleet] if name == "pipeline" else []) for name in CASES],
)
def test_smallest_case_runs_and_prints_its_table(name: str) -> None:
    case = CASES[name]
    output = run_benchmark(name, case.args)
    rows = table_rows(output)
    assert len(rows) == case.rows, output
    assert rows[0].startswith(case.row_start), output
    assert "nan" not in " ".join(rows), output
    if name == "postprocess":  # FBX timed with headless Blender, or the reason it is not
        assert "FBX (Blender)" in output or "FBX left out: no headless Blender" in output, output


def test_job_listing_prints_a_line_per_count() -> None:
    output = run_benchmark("job_listing", LINES["job_listing"])
    assert re.findall(r"^\s*(\d+) jobs: \d+ Redis commands for two pages of 20", output, re.MULTILINE) == [
        "10",
        "30",
    ], output
