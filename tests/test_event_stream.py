"""GET /3d/events/{id}: a job's progress as Server-Sent Events from a real fleet, read by a real HTTP
client: every state in order, each stage's record, the final record, and resumption with Last-Event-ID."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api_keys import bearer
from tests.fleet import Fleet, wait_for_end

pytestmark = pytest.mark.fleet

CUBE = {"prompt": "a red cube"}
STATES = ["queued", "generating_images", "reconstructing_3d", "post_processing"]


@dataclass
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


def read_events(
    client: httpx.Client, job_id: str, last_event_id: str | None = None, **headers: str
) -> list[Event]:
    """Every event of the stream, read until the server ends it."""
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[Event] = []
    with client.stream("GET", f"/3d/events/{job_id}", headers=headers, timeout=60) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in answer.iter_lines():
            if line == "":
                if "event" in fields:
                    events.append(Event(fields["event"], json.loads(fields["data"]), fields.get("id")))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return events


def test_a_followed_job_sends_each_state_each_stage_and_its_end(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json=CUBE).json()["job_id"]
    events = read_events(api, job_id)
    assert [e.data["state"] for e in events if e.name == "state"] == STATES
    assert [e.data["stage"] for e in events if e.name == "stage"] == STATES[1:]
    assert all(e.data["job_id"] == job_id for e in events)
    end = events[-1]
    assert end.name == "end" and end.data["state"] == "completed"
    assert end.data["download_url"] == f"/3d/download/{job_id}"
    assert end.data == api.get(f"/3d/status/{job_id}").json()
    ids = [e.id for e in events if e.id is not None]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert len(set(ids)) == len(ids)


def test_a_reconnect_with_last_event_id_resumes_after_that_event(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json=CUBE).json()["job_id"]
    everything = read_events(api, job_id)
    first_with_id = next(i for i, e in enumerate(everything) if e.id is not None)
    resumed = read_events(api, job_id, everything[first_with_id].id)
    assert [(e.name, e.data) for e in resumed] == [(e.name, e.data) for e in everything[first_with_id + 1 :]]
    last = max(i for i, e in enumerate(everything[:-1]) if e.id is not None)
    # After the last id before the end: the last stage's record, written with the end, then the end.
    assert [e.name for e in read_events(api, job_id, everything[last].id)] == ["stage", "end"]
    assert [e.name for e in everything[last + 1 :]] == ["stage", "end"]


def test_a_cancelled_job_ends_its_stream_as_cancelled(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json={**CUBE, "quality_tier": "high"}).json()["job_id"]
    assert api.post(f"/3d/cancel/{job_id}").status_code == 200
    events = read_events(api, job_id)
    assert events[-1].name == "end"
    assert events[-1].data["state"] == "cancelled"


def test_a_failed_job_ends_with_its_message(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json={"prompt": "a wooden chair"}).json()["job_id"]
    events = read_events(api, job_id)
    assert events[-1].data["state"] == "failed"
    assert events[-1].data["message"] == wait_for_end(api, job_id)["message"]


def test_unknown_jobs_and_foreign_event_ids_are_refused(api: httpx.Client) -> None:
    assert api.get(f"/3d/events/{'0' * 32}").status_code == 404
    assert api.get("/3d/events/not-a-job").status_code == 422
    job_id = api.post("/3d/generate", json=CUBE).json()["job_id"]
    bad = api.get(f"/3d/events/{job_id}", headers={"Last-Event-ID": "<script>"})
    assert bad.status_code == 422
    assert "Last-Event-ID" in bad.json()["detail"]


def test_with_keys_on_a_stream_is_its_jobs_owners(keys_fleet: Fleet) -> None:
    with httpx.Client(base_url=keys_fleet.api, timeout=30) as client:
        job_id = client.post("/3d/generate", json=CUBE, headers=bearer("alice")).json()["job_id"]
        assert client.get(f"/3d/events/{job_id}").status_code == 401
        assert client.get(f"/3d/events/{job_id}", headers=bearer("bob")).status_code == 403
        events = read_events(client, job_id, **bearer("alice"))
    assert events[-1].name == "end"
