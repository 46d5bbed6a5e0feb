"""meshforge.client and the `meshforge` CLI against a real fleet: the CLI as a subprocess (files, --json,
exit codes), the sync and async clients (typed answers, live events, atomic downloads), and what a
client must survive, injected by a loopback proxy (tests/fault_proxy.py): a lost submit answer, a busy
server, a cut event stream, a server without /3d/events, a download cut short."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trimesh

from meshforge.client import (
    ApiUnreachable,
    AsyncClient,
    Client,
    Conflict,
    Event,
    Forbidden,
    InvalidImages,
    InvalidRequest,
    NotFound,
    RetryPolicy,
    Unauthorized,
    WaitTimedOut,
)
from meshforge.schemas import JobState, JobStatus
from meshforge.settings import is_settings_variable
from tests.api_keys import KEYS, bearer
from tests.fault_proxy import FaultProxy
from tests.fleet import REPO, Fleet, free_port, wait_for_end
from tests.gltf_validator import assert_valid_glb

pytestmark = pytest.mark.fleet

CUBE = "a red cube"
FAILING = "a wooden chair"  # the offline image backend cannot draw it: the job fails with a message
STATES = ["queued", "generating_images", "reconstructing_3d", "post_processing"]
VIEWS = ["00-front.png", "02-right.png", "04-back.png", "06-left.png"]
QUICK = RetryPolicy(attempts=3, backoff=0.05)


def meshforge(*args: str, api: str, cwd: Path, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a process of its own, the API named by MESHFORGE_API."""
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)}
    env["MESHFORGE_API"] = api
    if key is not None:
        env["MESHFORGE_API_KEY"] = key
    command = [sys.executable, "-m", "meshforge.client.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def job_total(api: httpx.Client) -> int:
    return int(api.get("/3d/jobs", params={"limit": 1}).json()["total"])


@pytest.fixture
def proxy(fleet: Fleet) -> Iterator[FaultProxy]:
    with FaultProxy(fleet.api).running() as running:
        yield running


@pytest.fixture(scope="module")
def finished_cube(fleet: Fleet) -> dict:
    """A completed cube job, for the commands that read one and for its views."""
    with httpx.Client(base_url=fleet.api, timeout=30) as api:
        job_id = api.post("/3d/generate", json={"prompt": CUBE}).json()["job_id"]
        status = wait_for_end(api, job_id)
    assert status["state"] == "completed", status
    return status


# --- the CLI -------------------------------------------------------------------------------------------


def test_the_project_installs_the_meshforge_console_script() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["meshforge"] == "meshforge.client.cli:main"
    assert any(d.startswith("tqdm") for d in project["dependencies"])  # the bar, from a plain install
    script = Path(sys.executable).parent / "meshforge"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "exit codes:" in result.stdout and "MESHFORGE_API_KEY" in result.stdout


def test_generate_with_wait_writes_a_valid_glb(fleet: Fleet, tmp_path: Path) -> None:
    result = meshforge("generate", CUBE, "-o", "cube.glb", "--wait", api=fleet.api, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    asset = tmp_path / "cube.glb"
    assert asset.read_bytes()[:4] == b"glTF"
    assert_valid_glb(asset)
    assert "completed" in result.stdout and "wrote cube.glb" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["cube.glb"]  # no temporary file left behind


def test_json_output_is_only_json_and_the_suffix_picks_the_format(fleet: Fleet, tmp_path: Path) -> None:
    # --json after the command works as well as before it.
    result = meshforge(
        "generate", CUBE, "-o", "cube.stl", "--seed", "7", "--json", api=fleet.api, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["state"] == "completed"
    assert record["request"]["output_format"] == "stl" and record["request"]["seed"] == 7
    assert Path(record["output_file"]).name == "cube.stl" and (tmp_path / "cube.stl").stat().st_size > 84
    status = json.loads(meshforge("--json", "status", record["job_id"], api=fleet.api, cwd=tmp_path).stdout)
    assert JobStatus.model_validate(status).job_id == record["job_id"]
    listed = json.loads(meshforge("--json", "jobs", "--limit", "2", api=fleet.api, cwd=tmp_path).stdout)
    assert len(listed["jobs"]) == 2 and listed["limit"] == 2
    submitted = meshforge("--json", "generate", CUBE, "--no-wait", api=fleet.api, cwd=tmp_path)
    assert json.loads(submitted.stdout)["status_url"].startswith("/3d/status/")


def test_a_failed_job_exits_1_with_its_message(fleet: Fleet, api: httpx.Client, tmp_path: Path) -> None:
    result = meshforge("generate", FAILING, "-o", "chair.glb", api=fleet.api, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    job_id = result.stderr.split("job ")[1].split()[0]
    status = api.get(f"/3d/status/{job_id}").json()
    assert status["state"] == "failed" and status["message"]
    assert f"job {job_id} failed: {status['message']}" in result.stderr
    assert not (tmp_path / "chair.glb").exists()


def test_bad_usage_exits_2_before_anything_is_sent(fleet: Fleet, api: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "front.png").write_bytes(b"not read")
    before = job_total(api)
    cases = {
        ("generate", CUBE, "--faces", "many"): "invalid int value",
        ("generate", CUBE, "-o", "cube.ply"): "cannot tell the format",
        ("generate", CUBE, "-o", "cube.glb", "--format", "stl"): "--format says stl",
        ("generate", CUBE, "-o", "cube.glb", "--no-wait"): "-o needs --wait",
        ("from-image", "front.png", "front.png", "-o", "x.glb"): "2 images given",
        ("from-image", "front.png", "missing.png", "a.png", "b.png"): "no such image file",
        ("from-image", "front.png", "https://example.com/a.png", "x", "y"): "not both",
        ("frobnicate",): "invalid choice",
    }
    for args, message in cases.items():
        result = meshforge(*args, api=fleet.api, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "usage: meshforge" in result.stderr, (args, result.stderr)
        assert result.stdout == ""
    assert job_total(api) == before


def test_an_unreachable_api_exits_3_with_a_clear_message(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # a free loopback port: nothing listens there
    result = meshforge("generate", CUBE, "-o", "cube.glb", api=nowhere, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert f"cannot reach the meshforge API at {nowhere}" in result.stderr
    assert "MESHFORGE_API" in result.stderr and "Traceback" not in result.stderr
    as_json = meshforge("--json", "status", "0" * 32, api=nowhere, cwd=tmp_path)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["error"]["type"] == "ApiUnreachable"


def test_api_errors_exit_3_with_the_servers_detail(fleet: Fleet, finished_cube: dict, tmp_path: Path) -> None:
    unknown = meshforge("--json", "status", "0" * 32, api=fleet.api, cwd=tmp_path)
    assert unknown.returncode == 3
    assert json.loads(unknown.stdout)["error"] | {"detail": ""} == {
        "type": "NotFound", "status": 404, "code": "not_found", "detail": "",
    }  # fmt: skip
    again = meshforge("cancel", finished_cube["job_id"], api=fleet.api, cwd=tmp_path)
    assert again.returncode == 3 and "already completed" in again.stderr and "409" in again.stderr


def test_from_image_reconstructs_the_views_of_a_finished_job(
    fleet: Fleet, finished_cube: dict, tmp_path: Path
) -> None:
    views = fleet.data_dir / "inputs" / "jobs" / finished_cube["job_id"] / "views"
    images = [str(views / name) for name in VIEWS]
    result = meshforge("from-image", *images, "-o", "cube.obj", "--json", api=fleet.api, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["kind"] == "images" and len(record["request"]["image_paths"]) == 4
    # The OBJ download is its .obj, .mtl and texture zipped: -o cube.obj becomes cube.obj.zip.
    assert record["output_file"].endswith("cube.obj.zip")
    with zipfile.ZipFile(tmp_path / "cube.obj.zip") as bundle:
        assert sorted(Path(name).suffix for name in bundle.namelist()) == [".mtl", ".obj", ".png"]


def test_status_jobs_cancel_and_download_commands(fleet: Fleet, finished_cube: dict, tmp_path: Path) -> None:
    job_id = finished_cube["job_id"]
    status = meshforge("status", job_id, api=fleet.api, cwd=tmp_path)
    assert status.returncode == 0 and job_id in status.stdout and "completed" in status.stdout
    listed = meshforge("jobs", "--state", "completed", "--limit", "3", api=fleet.api, cwd=tmp_path)
    assert listed.returncode == 0 and "jobs (from 0)" in listed.stdout
    fetched = meshforge("download", job_id, "-o", str(tmp_path), api=fleet.api, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / f"{job_id}.glb").read_bytes()[:4] == b"glTF"  # a folder: the server's file name
    other = meshforge("download", job_id, "--format", "stl", "-o", "cube.stl", api=fleet.api, cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert len(trimesh.load(tmp_path / "cube.stl").faces) > 0  # the same job, converted to STL
    preview = meshforge("download", job_id, "--preview", "-o", "p.png", api=fleet.api, cwd=tmp_path)
    assert preview.returncode == 0 and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    slow = meshforge("generate", CUBE, "--tier", "high", "--no-wait", api=fleet.api, cwd=tmp_path)
    cancelled = meshforge("cancel", slow.stdout.strip(), api=fleet.api, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    health = meshforge("health", api=fleet.api, cwd=tmp_path)
    assert health.returncode == 0 and health.stdout.startswith("orchestrator: ok")


def test_the_cli_sends_the_api_key(keys_fleet: Fleet, tmp_path: Path) -> None:
    alice, bob = KEYS["alice"][0], KEYS["bob"][0]
    without = meshforge("jobs", api=keys_fleet.api, cwd=tmp_path)
    assert without.returncode == 3 and "API key" in without.stderr
    made = meshforge("generate", CUBE, "--no-wait", api=keys_fleet.api, cwd=tmp_path, key=alice)
    assert made.returncode == 0, made.stderr
    job_id = made.stdout.strip()
    mine = meshforge("--key", alice, "status", job_id, api=keys_fleet.api, cwd=tmp_path, key=bob)
    assert mine.returncode == 0, mine.stderr  # --key wins over MESHFORGE_API_KEY
    theirs = meshforge("status", job_id, api=keys_fleet.api, cwd=tmp_path, key=bob)
    assert theirs.returncode == 3 and "403" in theirs.stderr


# --- the library ---------------------------------------------------------------------------------------


def test_the_readmes_python_example_runs(fleet: Fleet, tmp_path: Path) -> None:
    section = (REPO / "README.md").read_text().split("### Python client and CLI", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert example is not None, "the README's client section lost its Python example"
    env = {k: v for k, v in os.environ.items() if not is_settings_variable(k)} | {"MESHFORGE_API": fleet.api}
    result = subprocess.run(
        [sys.executable, "-c", example[1]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("end ")
    assert (tmp_path / "cube.glb").read_bytes()[:4] == b"glTF"


def test_the_sync_client_generates_follows_the_events_and_downloads(fleet: Fleet, tmp_path: Path) -> None:
    events: list[Event] = []
    with Client(fleet.api) as client:
        created = client.generate(CUBE, output_format="glb", seed=3)
        final = client.wait(created.job_id, timeout=120, on_event=events.append)
        assert isinstance(final, JobStatus) and final.state is JobState.completed
        assert final == client.status(created.job_id)
        path = client.download(created.job_id, tmp_path / "cube.glb")
        listed = client.jobs(limit=5, state="completed")
        assert client.health().status == "ok"
    assert [e.data["state"] for e in events if e.name == "state"] == STATES
    assert [e.name for e in events][-1] == "end"
    assert path.read_bytes()[:4] == b"glTF"
    assert created.job_id in [job.job_id for job in listed.jobs]


def test_the_async_client_does_the_same(fleet: Fleet, tmp_path: Path) -> None:
    async def scenario() -> tuple[JobStatus, list[Event], Path]:
        events: list[Event] = []
        async with AsyncClient(fleet.api) as client:
            created = await client.generate(CUBE, output_format="stl")
            final = await client.wait(created.job_id, timeout=120, on_event=events.append)
            path = await client.download(created.job_id, tmp_path)
            with pytest.raises(Conflict):
                await client.cancel(created.job_id)
        return final, events, path

    final, events, path = asyncio.run(scenario())
    assert final.state is JobState.completed
    assert [e.data["state"] for e in events if e.name == "state"] == STATES
    assert path == tmp_path / f"{final.job_id}.stl"


def test_answers_are_typed_errors(fleet: Fleet, keys_fleet: Fleet, finished_cube: dict) -> None:
    with Client(fleet.api) as client:
        with pytest.raises(NotFound) as unknown:
            client.status("0" * 32)
        assert (unknown.value.status, unknown.value.code) == (404, "not_found")
        with pytest.raises(InvalidRequest) as refused:
            client.generate(CUBE, output_format="ply")
        assert refused.value.code == "invalid_request" and "output_format" in refused.value.detail
        with pytest.raises(Conflict):
            client.cancel(finished_cube["job_id"])
        with pytest.raises(InvalidImages):
            client.from_images(["a.png", "b.png"])
    with Client(keys_fleet.api, api_key="") as anonymous, pytest.raises(Unauthorized):
        anonymous.jobs()
    with httpx.Client(base_url=keys_fleet.api) as raw:
        job_id = raw.post("/3d/generate", json={"prompt": CUBE}, headers=bearer("alice")).json()["job_id"]
    with Client(keys_fleet.api, api_key=KEYS["bob"][0]) as bob, pytest.raises(Forbidden):
        bob.status(job_id)


def test_a_wait_past_its_timeout_raises(fleet: Fleet) -> None:
    with Client(fleet.api) as client:
        created = client.generate(CUBE, quality_tier="high")
        with pytest.raises(WaitTimedOut) as late:
            client.wait(created.job_id, timeout=0.2)
        assert late.value.job_id == created.job_id
        client.cancel(created.job_id)


def test_a_download_lands_whole_or_not_at_all(
    fleet: Fleet, finished_cube: dict, proxy: FaultProxy, tmp_path: Path
) -> None:
    target = tmp_path / "cube.glb"
    target.write_bytes(b"the previous file")
    proxy.faults.cut_downloads = 10  # every attempt is cut half-way
    with Client(proxy.url, retry=QUICK) as client:
        with pytest.raises(ApiUnreachable):
            client.download(finished_cube["job_id"], target)
        assert target.read_bytes() == b"the previous file"
        assert [p.name for p in tmp_path.iterdir()] == ["cube.glb"]
        assert len(proxy.requests("GET", "/3d/download/")) == QUICK.attempts
        proxy.faults.cut_downloads = 1  # one cut, then a retry that gets it all
        client.download(finished_cube["job_id"], target)
    assert target.read_bytes()[:4] == b"glTF"
    assert [p.name for p in tmp_path.iterdir()] == ["cube.glb"]


# --- retries and reconnects ----------------------------------------------------------------------------


def test_a_submit_whose_answer_was_lost_is_retried_into_the_same_job(
    api: httpx.Client, proxy: FaultProxy
) -> None:
    proxy.faults.lost_answers["POST /3d/generate"] = 1
    proxy.faults.busy["POST /3d/generate"] = 1
    before = job_total(api)
    with Client(proxy.url, retry=QUICK) as client:
        created = client.generate(CUBE)
    posts = proxy.requests("POST", "/3d/generate")
    assert len(posts) == 3  # busy, then created but its answer lost, then answered
    keys = {post.headers["Idempotency-Key"] for post in posts}
    assert len(keys) == 1 and uuid.UUID(keys.pop()).version == 4
    assert job_total(api) == before + 1  # one job, not two
    assert wait_for_end(api, created.job_id)["state"] == "completed"


def test_the_same_idempotency_key_twice_is_one_job(fleet: Fleet, api: httpx.Client) -> None:
    key = f"client-test-{uuid.uuid4()}"
    before = job_total(api)
    with Client(fleet.api) as client:
        first = client.generate(CUBE, idempotency_key=key)
        again = client.generate(CUBE, idempotency_key=key)
        with pytest.raises(Conflict) as other:
            client.generate("a blue sphere", idempotency_key=key)
    assert first.job_id == again.job_id
    assert other.value.code == "idempotency_key_reused"
    assert job_total(api) == before + 1


def test_a_cut_event_stream_resumes_with_last_event_id(
    fleet: Fleet, api: httpx.Client, proxy: FaultProxy
) -> None:
    proxy.faults.cut_events_after = 2
    events: list[Event] = []
    with Client(proxy.url, retry=QUICK) as client:
        created = client.generate(CUBE)
        final = client.wait(created.job_id, timeout=120, on_event=events.append)
    assert final.state is JobState.completed
    streams = proxy.requests("GET", "/3d/events/")
    assert len(streams) >= 2 and "Last-Event-ID" not in streams[0].headers
    resumed_after = streams[1].headers["Last-Event-ID"]
    assert resumed_after in [e.id for e in events[:2]]
    # Every event exactly once, as one uninterrupted read of the stream gives them.
    with Client(fleet.api) as direct:
        replay: list[Event] = []
        direct.wait(created.job_id, on_event=replay.append)
    assert [(e.name, e.data) for e in events] == [(e.name, e.data) for e in replay]


def test_a_server_without_the_event_stream_is_polled(proxy: FaultProxy) -> None:
    proxy.faults.no_events_endpoint = True
    events: list[Event] = []
    with Client(proxy.url, retry=QUICK) as client:
        created = client.generate(CUBE)
        final = client.wait(created.job_id, timeout=120, on_event=events.append)
    assert final.state is JobState.completed
    assert events[0].name == "state" and events[-1].name == "end"
    assert events[-1].data["job_id"] == created.job_id
    assert proxy.requests("GET", f"/3d/status/{created.job_id}?wait=")
