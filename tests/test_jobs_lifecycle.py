"""Cancel, list, and several jobs in flight at once."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fleet import wait_for_end

pytestmark = pytest.mark.fleet


def submit(api: httpx.Client, prompt: str, **extra: object) -> str:
    response = api.post("/3d/generate", json={"prompt": prompt, **extra})
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def wait_for_state(api: httpx.Client, job_id: str, states: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.get(f"/3d/status/{job_id}").json()
        if status["state"] in states:
            return status
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} never reached {states}")


def test_cancelling_a_running_job_stops_it_for_good(api: httpx.Client) -> None:
    job_id = submit(api, "a red torus", quality_tier="high")
    wait_for_state(api, job_id, {"generating_images", "reconstructing_3d"})
    response = api.post(f"/3d/cancel/{job_id}")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    time.sleep(3)
    status = api.get(f"/3d/status/{job_id}").json()
    assert status["state"] == "cancelled"
    assert api.get(f"/3d/download/{job_id}").status_code == 409


def test_cancelling_a_finished_job_is_409(api: httpx.Client) -> None:
    job_id = submit(api, "a white box")
    assert wait_for_end(api, job_id)["state"] == "completed"
    response = api.post(f"/3d/cancel/{job_id}")
    assert response.status_code == 409
    assert "already completed" in response.json()["detail"]


def test_a_cancelled_job_leaves_other_jobs_alone(api: httpx.Client) -> None:
    doomed = submit(api, "a pink capsule", quality_tier="high")
    survivor = submit(api, "a pink capsule")
    api.post(f"/3d/cancel/{doomed}")
    assert wait_for_end(api, survivor)["state"] == "completed"
    assert api.get(f"/3d/status/{doomed}").json()["state"] == "cancelled"


def test_two_jobs_in_flight_overlap_their_stages(api: httpx.Client) -> None:
    first = submit(api, "a purple pyramid", quality_tier="high")
    wait_for_state(api, first, {"reconstructing_3d"})
    second = submit(api, "an orange ball")
    a, b = wait_for_end(api, first), wait_for_end(api, second)
    assert a["state"] == b["state"] == "completed"
    reconstructing = a["stages"]["reconstructing_3d"]
    imaging = b["stages"]["generating_images"]
    # The second job drew its views while the first was being reconstructed.
    assert imaging["started_at"] < reconstructing["finished_at"]
    assert imaging["finished_at"] > reconstructing["started_at"]


def test_job_list_is_newest_first_and_paginated(api: httpx.Client) -> None:
    ids = [submit(api, f"a {colour} cube") for colour in ("red", "green", "blue")]
    for job_id in ids:
        wait_for_end(api, job_id)
    page = api.get("/3d/jobs", params={"limit": 2}).json()
    assert [job["job_id"] for job in page["jobs"]] == ids[::-1][:2]
    assert page["total"] >= 3 and page["limit"] == 2 and page["offset"] == 0
    following = api.get("/3d/jobs", params={"limit": 2, "offset": 2}).json()
    assert following["jobs"][0]["job_id"] == ids[0]
    completed = api.get("/3d/jobs", params={"state": "completed", "limit": 100}).json()
    assert all(job["state"] == "completed" for job in completed["jobs"])
