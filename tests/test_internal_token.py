"""MESHFORGE_INTERNAL_TOKEN: a fleet whose stage services answer only callers carrying the secret.

A fleet of its own (one replica per stage) runs with the token set. Each stage service refuses
requests without the header, with a wrong token or with the token in the wrong header; /health stays
open for probes but says no more than "ok"; and a whole job still completes through the public API,
which needs no token, because the orchestrator, the dispatcher and image-service send it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshforge.internal_token import INTERNAL_TOKEN_HEADER
from tests.fleet import Fleet, start_fleet, wait_for_end

pytestmark = pytest.mark.fleet

TOKEN = secrets.token_hex(32)
STAGES = ("IMAGE", "FLUX", "RECONSTRUCTION", "POSTPROCESS")
OUTPUTS = ("output_dir", "output_path", "preview_path")


def work(fleet: Fleet, stage: str) -> tuple[str, dict[str, Any]]:
    """One request for ``stage`` that would do work if it were let in, for a fresh job, with its
    output where the dispatcher puts it (orchestrator/stages.py)."""
    data, job_id = fleet.data_dir, uuid.uuid4().hex
    job_inputs = data / "inputs" / "jobs" / job_id
    mesh = data / "cache" / "jobs" / job_id / "reconstruction.glb"
    requests: dict[str, tuple[str, dict[str, Any]]] = {
        "IMAGE": (
            "/imagine/generate",
            {
                "prompt": "a red cube",
                "num_views": 1,
                "image_size": 64,
                "job_id": job_id,
                "output_dir": str(job_inputs),
            },
        ),
        "FLUX": (
            "/generate",
            {
                "prompt": "a red cube",
                "width": 32,
                "height": 32,
                "output_path": str(job_inputs / "generated" / "00-front.png"),
            },
        ),
        "RECONSTRUCTION": (
            "/reconstruct/mesh",
            {
                "image_paths": [str(job_inputs / "views" / "00-front.png")],
                "job_id": job_id,
                "output_path": str(mesh),
            },
        ),
        "POSTPROCESS": (
            "/postprocess/clean",
            {
                "mesh_path": str(mesh),
                "job_id": job_id,
                "output_path": str(data / "outputs" / f"{job_id}.glb"),
                "preview_path": str(data / "outputs" / f"{job_id}.preview.png"),
            },
        ),
    }
    return requests[stage]


WRONG = {
    "none": {},
    "wrong": {INTERNAL_TOKEN_HEADER: secrets.token_hex(32)},
    "prefix": {INTERNAL_TOKEN_HEADER: TOKEN[:-1]},
    "longer": {INTERNAL_TOKEN_HEADER: TOKEN + "0"},
    "empty": {INTERNAL_TOKEN_HEADER: ""},
    "as-bearer": {"Authorization": f"Bearer {TOKEN}"},
}


@pytest.fixture(scope="module")
def closed_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    running = start_fleet(
        tmp_path_factory.mktemp("closed-fleet"),
        flux_replicas=1,
        reconstruction_replicas=1,
        extra_env={"MESHFORGE_INTERNAL_TOKEN": TOKEN},
    )
    yield running
    running.stop()


def stage_url(fleet: Fleet, stage: str) -> str:
    return fleet.env[f"MESHFORGE_{stage}_SERVICE_URLS"]


@pytest.mark.parametrize("headers", WRONG.values(), ids=WRONG.keys())
@pytest.mark.parametrize("stage", STAGES)
def test_stage_services_refuse_callers_without_the_token(
    closed_fleet: Fleet, stage: str, headers: dict[str, str]
) -> None:
    path, body = work(closed_fleet, stage)
    response = httpx.post(stage_url(closed_fleet, stage) + path, json=body, headers=headers, timeout=30)
    assert response.status_code == 401, response.text
    answer = response.json()
    assert answer["code"] == "internal_token"
    assert INTERNAL_TOKEN_HEADER in answer["detail"] and "MESHFORGE_INTERNAL_TOKEN" in answer["detail"]
    assert TOKEN not in response.text
    assert not any(Path(body[key]).exists() for key in OUTPUTS if key in body)  # nothing was written


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_description_is_closed_too(closed_fleet: Fleet, stage: str) -> None:
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(stage_url(closed_fleet, stage) + path, timeout=10).status_code == 401, path


@pytest.mark.parametrize("stage", STAGES)
def test_health_is_open_for_probes_but_says_only_ok(closed_fleet: Fleet, stage: str) -> None:
    url = stage_url(closed_fleet, stage) + "/health"
    anonymous = httpx.get(url, timeout=10)
    assert anonymous.status_code == 200
    assert set(anonymous.json()) == {"service", "status"} and anonymous.json()["status"] == "ok"
    fleet_caller = httpx.get(url, headers={INTERNAL_TOKEN_HEADER: TOKEN}, timeout=10)
    assert fleet_caller.status_code == 200
    assert fleet_caller.json()["backend"], fleet_caller.json()  # the full answer: backend, detail


def test_a_caller_with_the_token_is_served(closed_fleet: Fleet) -> None:
    path, body = work(closed_fleet, "IMAGE")
    response = httpx.post(
        stage_url(closed_fleet, "IMAGE") + path,
        json=body,
        headers={INTERNAL_TOKEN_HEADER: TOKEN},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    # image-service → flux-service carried the token; the view is in the job's folder.
    assert response.json()["image_paths"] == [f"{body['output_dir']}/views/00-front.png"]


def test_orchestrator_health_sees_every_stage_through_the_token(closed_fleet: Fleet) -> None:
    answer = httpx.get(closed_fleet.api + "/health", timeout=30).json()
    assert answer["status"] == "ok", answer
    replicas = [r for stage in answer["detail"]["stages"].values() for r in stage.values()]
    assert len(replicas) == 4
    assert all(replica.get("backend") for replica in replicas), answer  # full answers, not the anonymous


def test_a_whole_job_completes_with_the_public_api_needing_no_token(
    closed_fleet: Fleet, tmp_path: Path
) -> None:
    with httpx.Client(base_url=closed_fleet.api, timeout=30) as api:
        submitted = api.post("/3d/generate", json={"prompt": "a red cube", "output_format": "glb"})
        assert submitted.status_code in (200, 201, 202), submitted.text
        status = wait_for_end(api, submitted.json()["job_id"], timeout=120)
        assert status["state"] == "completed", status
        asset = api.get(f"/3d/download/{submitted.json()['job_id']}")
    assert asset.status_code == 200 and asset.content.startswith(b"glTF")
