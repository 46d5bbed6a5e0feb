"""The README's quick start, run verbatim: `make run`, then every curl example against :38100.

These tests (marker ``stack``) take the default ports; beside a running `make run` they skip
(tests/conftest.py, tests/stack_ports.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meshforge.settings import is_settings_variable
from tests.fleet import REPO, wait_until
from tests.gltf_validator import assert_valid_glb
from tests.stack_ports import default_ports, listening_ports

pytestmark = pytest.mark.stack

API = "http://localhost:38100"
BLOCK = re.compile(r"<!-- readme-test(?P<kind>: run)? -->\n```bash\n(?P<body>.*?)```", re.DOTALL)


def readme_blocks() -> tuple[str, list[str]]:
    """The run command and the example blocks, in README order."""
    run, examples = None, []
    for match in BLOCK.finditer((REPO / "README.md").read_text()):
        if match["kind"]:
            run = match["body"].strip()
        else:
            examples.append(match["body"])
    assert run is not None and examples, "README lost its tested blocks"
    return run, examples


def wait_for_stack(process: subprocess.Popen, timeout: float) -> None:
    """Until /health says ok; gives up at once if `make run` exits (a port taken, a failed install)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TimeoutError(f"make run exited with {process.returncode}")
        try:
            if httpx.get(f"{API}/health", timeout=2).json()["status"] == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"make run not healthy within {timeout} s")


def process_stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, from /proc/<pid>/stat; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid … starttime (22nd)
    return int(fields[1]), fields[0], fields[19]


def process_tree(root: int) -> dict[int, tuple[str, str]]:
    """pid → (start time, command line) of ``root`` and every process below it now."""
    stats = {int(entry.name): process_stat(int(entry.name)) for entry in Path("/proc").glob("[0-9]*")}
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        stat = stats.get(pid)
        if stat is None:
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        tree[pid] = (stat[2], command)
        todo.extend(children.get(pid, []))
    return tree


def still_running(processes: dict[int, tuple[str, str]]) -> dict[int, str]:
    """Those of ``processes`` still alive: same pid and start time (not a reused pid), not a zombie."""
    alive = {}
    for pid, (started, command) in processes.items():
        stat = process_stat(pid)
        if stat is not None and stat[2] == started and stat[1] not in "ZX":
            alive[pid] = command
    return alive


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    # tests/conftest.py has checked that the default ports are free (else these tests skip).
    run, _ = readme_blocks()
    log = tmp_path_factory.mktemp("stack") / "make-run.log"
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    process = subprocess.Popen(
        ["bash", "-c", run],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_stack(process, 180)
        wait_until(lambda: "meshforge is up" in log.read_text(), 30, "the ready banner")
    except TimeoutError as error:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)
        output = log.read_text()
        if "already in use" in output.lower():  # taken since conftest's check, by a process not ours
            pytest.skip(f"make run could not bind a default port: {error}:\n" + output[-2000:])
        pytest.fail(f"{error}:\n" + output[-4000:])
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)


def test_curl_examples_run_verbatim_and_produce_assets(stack: subprocess.Popen, tmp_path: Path) -> None:
    _, examples = readme_blocks()
    # The examples read inputs/ and run .venv/bin/meshforge relative to the checkout; run them elsewhere
    # so their files land in tmp.
    (tmp_path / "inputs").symlink_to(REPO / "inputs")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    script = "set -euo pipefail\n" + "\n".join(examples)
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_valid_glb(tmp_path / "red-cube.glb")
    assert_valid_glb(tmp_path / "cube.glb")  # written by the meshforge CLI
    with zipfile.ZipFile(tmp_path / "from-views.obj.zip") as bundle:
        assert sorted(Path(name).suffix for name in bundle.namelist()) == [".mtl", ".obj", ".png"]
    assert result.stdout.count('"state":"completed"') >= 2
    assert '"code":"invalid_request"' in result.stdout


def test_ctrl_c_stops_every_process(stack: subprocess.Popen) -> None:
    # The processes of this stack only, found now from the shell this test started, not by name: other
    # `python -m` processes (this pytest, anyone else's) are none of its business. honcho starts each
    # Procfile process in a session of its own, so the tree, not the process group, finds them all.
    processes = process_tree(stack.pid)
    commands = [command for _, command in processes.values()]
    procfile = (REPO / "Procfile").read_text()
    expected = [f"-m {module} " for module in re.findall(r"python -m (\S+)", procfile)] + ["redis-server "]
    for part in expected:
        assert any(part in command + " " for command in commands), (part, commands)
    os.killpg(stack.pid, signal.SIGINT)
    stack.wait(30)
    for port in default_ports():
        wait_until(lambda p=port: not listening_ports([p]), 15, f"port {port} to close")
    deadline = time.monotonic() + 5
    while (remaining := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert remaining == {}, remaining
