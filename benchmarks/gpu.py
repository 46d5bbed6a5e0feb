"""The model benchmarks on one GPU machine, in one command: one JSON file and the Markdown tables.

    python3 -m benchmarks.gpu --wheels build/gpu-wheels --out gpu.json   # a bare GPU machine, ≤ 8 minutes
    .venv/bin/python -m benchmarks.gpu --quick --device cpu --out gpu.json  # the smallest case of each, CPU
    .venv/bin/python -m benchmarks.gpu --print-requirements                # what --wheels installs

Made for a GPU machine that has Python and torch and nothing else, and no network: ``--wheels DIR``
first installs, with ``pip install --no-index --find-links DIR``, whatever the project's flux and
reconstruction extras need that the machine lacks (never torch: the machine's own build matches its
driver), then the project itself from this checkout. scripts/gpu_wheels.py builds such a folder.

Then it runs each model backend benchmark of ``BENCHMARKS`` (FLUX.1 and TripoSR at full size with random
weights on a GPU, and InstantMesh: Zero123++ and the LRM), each in a process of its own so
that its GPU memory is freed after it and a run over its time budget can be stopped, keeping the rows it
had measured. What each one runs is its own options, its ``SUITE_ARGS`` for the device and --quick. The
JSON (machine, install, every benchmark's status, rows and table) is rewritten after each benchmark, so a
command stopped from outside still leaves the ones done. The Markdown goes to stdout, progress to stderr.
Exit status: 0, 1 if a benchmark failed (one that ran out of time did not), 2 if nothing could run.

A benchmark module it runs has: ``SUITE_ARGS`` (its options for "cuda", "cuda-quick", "cpu" and
"cpu-quick"), ``build_parser()``, ``measure(args, on_row)`` returning a ``Measured`` of dataclass rows,
and ``table(rows)``, the Markdown table its command line prints (benchmarks/flux.py, for one).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Versions worth a line in the JSON, beside the machine.
REPORTED_PACKAGES = (
    "torch", "diffusers", "transformers", "accelerate", "safetensors", "tokenizers", "huggingface-hub",
    "numpy", "scikit-image", "trimesh", "meshforge",
)  # fmt: skip


@dataclass(frozen=True)
class Benchmark:
    name: str  # the module benchmarks.<name>
    title: str  # its section in docs/performance.md
    budget_s: float  # stopped after this long, keeping its rows so far
    optional: bool = False  # absent: skipped with the reason, not a failure


# 8 minutes in all, the install included, so that the whole run fits one 10-minute command with room.
BENCHMARKS = (
    Benchmark("flux", "FLUX.1", 210),
    Benchmark("triposr", "TripoSR", 150),
    Benchmark("instantmesh", "InstantMesh", 90, optional=True),
)
TOTAL_BUDGET_S = 480.0


@dataclass
class Measured:
    """What a benchmark's ``measure(args, on_row)`` returns: its table's rows (dataclasses) and the text
    its command line prints above (device, model) and below the table."""

    header: str
    rows: list[Any]
    meta: dict[str, Any] = field(default_factory=dict)
    footer: str = ""


def load_script(name: str) -> Any:
    """A module of scripts/ by file path: scripts/ is not a package and sys.path stays as it is."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine(device: str, prefix: Path | None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device,
        "gpu": None,
        "gpu_memory_gib": None,
        "gpu_count": 0,
        "driver": None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info |= {
            "gpu": properties.name,
            "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
            "gpu_count": torch.cuda.device_count(),
            "compute_capability": f"{properties.major}.{properties.minor}",
            "driver": nvidia_driver(),
        }
    versions = load_script("gpu_wheels").installed_versions(prefix)
    info["packages"] = {name: versions.get(name) for name in REPORTED_PACKAGES}
    return info


def nvidia_driver() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.splitlines()[0].strip() if done.returncode == 0 and done.stdout.strip() else None


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def run_benchmark(
    benchmark: Benchmark, device: str, quick: bool, budget_s: float, state: Path, env: dict[str, str]
) -> dict[str, Any]:
    """One benchmark in a child process (``--child``), which rewrites ``state`` after every row."""
    result: dict[str, Any] = {"name": benchmark.name, "title": benchmark.title, "budget_s": round(budget_s)}
    if importlib.util.find_spec(f"benchmarks.{benchmark.name}") is None:
        reason = f"benchmarks/{benchmark.name}.py is not present"
        return result | {"status": "skipped" if benchmark.optional else "failed", "reason": reason}
    progress(f"{benchmark.name}: running (budget {budget_s:.0f} s)")
    state.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.gpu", "--child", benchmark.name, "--state", str(state)]
    command += ["--device", device, *(["--quick"] if quick else [])]
    started, returncode = time.monotonic(), None
    # Killed at its budget (returncode stays None); its rows so far are in state. Its stdout is progress
    # too: stdout here carries only the tables.
    with contextlib.suppress(subprocess.TimeoutExpired):
        returncode = subprocess.run(
            command, cwd=REPO, env=env, stdout=sys.stderr, timeout=budget_s
        ).returncode
    result["seconds"] = round(time.monotonic() - started, 1)
    reported = json.loads(state.read_text()) if state.exists() else {"status": "running"}
    result |= reported
    if returncode is None:
        rows = len(reported.get("rows", []))
        result |= {"status": "timed_out", "reason": f"stopped after its {budget_s:.0f} s budget, {rows} rows"}
    elif reported["status"] == "running":
        result |= {"status": "failed", "reason": f"exited with code {returncode} before it finished"}
    return result


def run_child(name: str, suite: str, state: Path) -> int:
    """Inside the child: benchmarks.<name>'s measure() with its SUITE_ARGS[suite], rows saved as they come."""
    import traceback

    def save(report: dict[str, Any]) -> None:
        scratch = state.with_suffix(".tmp")
        scratch.write_text(json.dumps(report, default=str))
        scratch.replace(state)  # whole files only: the parent may read it after a kill

    report: dict[str, Any] = {"status": "running", "args": [], "rows": []}
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        missing = [a for a in ("SUITE_ARGS", "build_parser", "measure", "table") if not hasattr(module, a)]
        if missing:
            save({"status": "skipped", "reason": f"benchmarks.{name} has no {', '.join(missing)}"})
            return 0
        report["args"] = list(module.SUITE_ARGS[suite])
        save(report)

        measured_rows: list[Any] = []

        def on_row(row: Any) -> None:
            measured_rows.append(row)
            report.update(rows=[asdict(r) for r in measured_rows], table=module.table(measured_rows))
            save(report)

        measured = module.measure(module.build_parser().parse_args(report["args"]), on_row)
        report |= {"header": measured.header, "footer": measured.footer, "meta": measured.meta}
        report |= {"rows": [asdict(r) for r in measured.rows], "table": module.table(measured.rows)}
        save(report | {"status": "ok"})
        return 0
    except BaseException as error:  # SystemExit from argparse too; the rows so far are kept
        reason = f"{type(error).__name__}: {error}"
        save(report | {"status": "failed", "reason": reason, "traceback": traceback.format_exc()})
        traceback.print_exc()
        return 1


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    if m["device"] == "cuda":
        what = f"{m['gpu']} ({m['gpu_memory_gib']} GiB), driver {m['driver']}, "
        what += f"torch {m['torch']}, CUDA {m['cuda']}"
    else:
        what = f"CPU ({m['cpu']}, {m['torch_threads']} threads), torch {m['torch']}"
    parts = [f"## Model benchmarks, {m['date'][:10]}: {what}{', quick cases' if report['quick'] else ''}"]
    for b in report["benchmarks"]:
        command = " ".join(["python -m", f"benchmarks.{b['name']}", *b.get("args", [])])
        status = b["status"] if b["status"] == "ok" else f"{b['status']}: {b.get('reason', '')}"
        parts.append(f"### {b['title']}: `{command}` ({status}, {b.get('seconds', 0)} s)")
        parts += [text.strip("\n") for text in (b.get("header"), b.get("table"), b.get("footer")) if text]
    return "\n\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-benchmarks.json"), help="the JSON file")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--quick", action="store_true", help="each benchmark's smallest case")
    parser.add_argument("--wheels", type=Path, help="install what is missing from this folder first")
    parser.add_argument("--prefix", type=Path, help="install there (default: here, if writable)")
    parser.add_argument("--budget-s", type=float, default=TOTAL_BUDGET_S, help="for everything, install too")
    parser.add_argument("--print-requirements", action="store_true", help="what --wheels installs; exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_requirements:
        print("\n".join(load_script("gpu_wheels").requirements()))
        return 0
    if args.child:
        return run_child(args.child, f"{args.device}-quick" if args.quick else args.device, args.state)
    command = " ".join(["python -m benchmarks.gpu", *(sys.argv[1:] if argv is None else argv)])
    return run_suite(args, command)


def run_suite(args: argparse.Namespace, command: str) -> int:
    started = time.monotonic()
    report: dict[str, Any] = {"schema": "meshforge.gpu-benchmarks/1", "command": command, "quick": args.quick}
    wheels, prefix = load_script("gpu_wheels"), args.prefix
    if args.wheels and prefix is None and not os.access(sysconfig.get_paths()["purelib"], os.W_OK):
        prefix = Path(tempfile.gettempdir()) / "meshforge-gpu-site"  # a read-only environment
    report["install"] = None
    if args.wheels:
        try:
            report["install"] = wheels.install(args.wheels.resolve(), prefix)
        except wheels.InstallError as error:
            report["install"] = {"wheels": str(args.wheels), "error": str(error)}
            write(args.out, report)
            progress(f"install failed: {error}")
            return 2
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        progress("--device cuda, but torch sees no GPU")
        return 2
    report |= {"device": device, "machine": machine(device, prefix), "benchmarks": []}
    write(args.out, report)
    env, state = wheels.environment(prefix), args.out.resolve().with_name(f".{args.out.name}.state")
    for benchmark in BENCHMARKS:
        budget = min(benchmark.budget_s, args.budget_s - (time.monotonic() - started))
        if budget < 10:
            reason = f"no time left of the {args.budget_s:.0f} s budget"
            result = {"name": benchmark.name, "title": benchmark.title, "status": "skipped", "reason": reason}
        else:
            result = run_benchmark(benchmark, device, args.quick, budget, state, env)
        progress(f"{benchmark.name}: {result['status']} {result.get('reason', '')}")
        report["benchmarks"].append(result)
        report["seconds"] = round(time.monotonic() - started, 1)
        write(args.out, report)
    state.unlink(missing_ok=True)
    print(markdown(report))
    return 1 if any(b["status"] == "failed" for b in report["benchmarks"]) else 0


def progress(line: str) -> None:
    print(f"benchmarks.gpu: {line}", file=sys.stderr, flush=True)


def write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
