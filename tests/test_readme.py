"""The README's quick start, run verbatim: `make run`, then every curl example against :38100."""

from __future__ import annotations

import os
import re
import signal
import socket
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


def port_is_free(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        pass
    return False


DEFAULT_PORTS = (38100, 38101, 38110, 38120, 38130, 38140, 38179)


def port_is_bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    taken = [port for port in DEFAULT_PORTS if not port_is_bindable(port)]
    if taken:
        pytest.fail(f"ports {taken} are taken: stop whatever holds them before running the README test")
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
        pytest.fail(f"{error}:\n" + log.read_text()[-4000:])
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)


def test_curl_examples_run_verbatim_and_produce_assets(stack: subprocess.Popen, tmp_path: Path) -> None:
    _, examples = readme_blocks()
    # The examples read inputs/ relative to the checkout; run them elsewhere so their files land in tmp.
    (tmp_path / "inputs").symlink_to(REPO / "inputs")
    script = "set -euo pipefail\n" + "\n".join(examples)
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_valid_glb(tmp_path / "red-cube.glb")
    with zipfile.ZipFile(tmp_path / "from-views.obj.zip") as bundle:
        assert sorted(Path(name).suffix for name in bundle.namelist()) == [".mtl", ".obj", ".png"]
    assert result.stdout.count('"state":"completed"') >= 2
    assert '"code":"invalid_request"' in result.stdout


def test_ctrl_c_stops_every_process(stack: subprocess.Popen) -> None:
    os.killpg(stack.pid, signal.SIGINT)
    stack.wait(30)
    for port in DEFAULT_PORTS:
        wait_until(lambda p=port: port_is_free(p), 15, f"port {port} to close")
    time.sleep(0.2)
    remaining = subprocess.run(["pgrep", "-f", r"^\.venv/bin/python -m "], capture_output=True, text=True)
    assert remaining.stdout.strip() == "", remaining.stdout
