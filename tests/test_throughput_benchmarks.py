"""The throughput benchmarks run: each one's quick case (the line its docstring marks "quick check"), as
`python -m benchmarks.X`, completes every job and prints its table. Speed is measured by the benchmarks
(`make bench`), never asserted here: the machine is shared.
"""

from __future__ import annotations

import importlib
import re
import shlex

import pytest

from benchmarks.stage_backends import INSTANT, SLEEPING
from tests.test_benchmarks import run_benchmark, table_rows


def quick_case(name: str) -> tuple[str, ...]:
    """The arguments of the quick check its docstring shows, so the docstring stays true."""
    doc = importlib.import_module(f"benchmarks.{name}").__doc__ or ""
    line = next(line for line in doc.splitlines() if "# quick check" in line)
    command = shlex.split(line.split("#", 1)[0])
    return tuple(command[command.index(f"benchmarks.{name}") + 1 :])


def test_benchmark_backends_are_not_in_the_production_registries() -> None:
    from flux_service.backends import BACKENDS as FLUX
    from postprocess_service.backends import BACKENDS as POSTPROCESS
    from reconstruction_service.backends import BACKENDS as RECONSTRUCTION

    for registry in (FLUX, RECONSTRUCTION, POSTPROCESS):
        assert not {INSTANT, SLEEPING} & set(registry.names), registry.names


@pytest.mark.fleet
def test_control_plane_quick_case_completes_every_job_and_prints_its_tables() -> None:
    args = quick_case("control_plane")
    jobs = args[args.index("--jobs") + 1]
    depth = args[args.index("--depths") + 1]
    output = run_benchmark("control_plane", args)
    rows = table_rows(output)
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| 0 (4 clients, closed loop)", jobs],
        [f"| {depth} (backlog)", depth],
    ], output
    assert "nan" not in " ".join(rows), output
    assert "| total, submit → downloaded |" in output, output  # the time breakdown
    assert re.search(r"^\| evalsha \| \d+\.\d\d \|$", output, re.MULTILINE), output  # commands by name


@pytest.mark.fleet
def test_pipelining_quick_case_completes_every_job_and_prints_its_table() -> None:
    args = quick_case("pipelining")
    counts = [int(c) for c in args[args.index("--replicas") + 1].split(",")]
    per_replica = int(args[args.index("--jobs-per-replica") + 1])
    output = run_benchmark("pipelining", args)
    rows = table_rows(output)
    cells = [row.strip("|").split(" | ") for row in rows]
    assert [(cell[0].strip(), int(cell[2])) for cell in cells] == [
        (f"{n} + {n}", n * per_replica) for n in counts
    ], output
    assert cells[0][5] == "1.00×", output
    assert "nan" not in " ".join(rows), output
