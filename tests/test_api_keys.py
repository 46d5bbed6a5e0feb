"""API keys and ownership: keys off, the API is open as before; keys on, every /3d/* route needs a valid
Bearer key, each job and upload belongs to its key, and an admin key sees and acts on everything."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meshforge.settings import OrchestratorSettings
from orchestrator.auth import load_keys
from tests.api_keys import KEYS, bearer
from tests.fleet import REPO, Fleet, Stack, start_stack, wait_for_end
from tests.meshes import canonical_photos, stacked_boxes

pytestmark = pytest.mark.fleet

JOB = "0123456789abcdef0123456789abcdef"
ROUTES = [
    ("POST", "/3d/generate", {"json": {"prompt": "a red cube"}}),
    ("POST", "/3d/from-image", {"json": {"image_urls": ["https://example.com/a.png"]}}),
    ("POST", "/3d/upload", {"files": {"files": ("a.png", b"\x89PNG", "image/png")}}),
    ("GET", f"/3d/status/{JOB}", {}),
    ("GET", f"/3d/download/{JOB}", {}),
    ("GET", f"/3d/preview/{JOB}", {}),
    ("GET", "/3d/jobs", {}),
    ("POST", f"/3d/cancel/{JOB}", {}),
]
WRONG_AUTH = {
    "no header": {},
    "unknown key": {"Authorization": "Bearer mf_not_a_key_of_this_server"},
    "another scheme": {"Authorization": f"Basic {KEYS['alice'][0]}"},
    "bearer without a key": {"Authorization": "Bearer"},
}


@pytest.fixture(scope="module")
def keyed(keys_fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keys_fleet.api, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def open_stack(keys_fleet: Fleet) -> Iterator[Stack]:
    """An orchestrator with keys off (an empty MESHFORGE_API_KEYS) on its own Redis database."""
    stack = start_stack(keys_fleet, "keys-off", 11, MESHFORGE_API_KEYS="")
    yield stack
    stack.stop()


def upload_views(client: httpx.Client, name: str | None) -> list[str]:
    files = [
        ("files", (f"{i}.png", png, "image/png"))
        for i, png in enumerate(canonical_photos(stacked_boxes(), 4))
    ]
    response = client.post("/3d/upload", files=files, headers=bearer(name) if name else {})
    assert response.status_code == 201, response.text
    return response.json()["image_paths"]


def test_with_keys_off_every_route_is_open_as_before(open_stack: Stack) -> None:
    with httpx.Client(base_url=open_stack.api, timeout=30) as client:
        job = client.post("/3d/generate", json={"prompt": "a red cube"})
        assert job.status_code == 200, job.text
        job_id = job.json()["job_id"]
        paths = upload_views(client, None)
        assert client.post("/3d/from-image", json={"image_paths": paths}).status_code == 200
        assert client.get(f"/3d/status/{job_id}").status_code == 200
        assert job_id in [j["job_id"] for j in client.get("/3d/jobs").json()["jobs"]]
        assert client.get(f"/3d/download/{job_id}").status_code == 409  # queued: no dispatcher here
        assert client.post(f"/3d/cancel/{job_id}").json()["state"] == "cancelled"
        assert "stages" in client.get("/health").json()["detail"]


@pytest.mark.parametrize("auth", sorted(WRONG_AUTH))
@pytest.mark.parametrize(
    ("method", "path", "body"), ROUTES, ids=[f"{m} {p.split('/')[2]}" for m, p, _ in ROUTES]
)
def test_every_route_needs_a_valid_bearer_key(
    keyed: httpx.Client, method: str, path: str, body: dict, auth: str
) -> None:
    response = keyed.request(method, path, headers=WRONG_AUTH[auth], **body)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"
    assert "Authorization: Bearer" in response.json()["detail"] or "not valid" in response.json()["detail"]


def test_health_stays_open_but_only_an_admin_sees_the_replicas(
    keyed: httpx.Client, keys_fleet: Fleet
) -> None:
    replica = keys_fleet.env["MESHFORGE_IMAGE_SERVICE_URLS"]
    for headers in ({}, bearer("alice"), WRONG_AUTH["unknown key"]):
        response = keyed.get("/health", headers=headers)
        assert response.status_code == 200
        assert response.json()["status"] in ("ok", "degraded")
        assert response.json()["detail"] == {} and replica not in response.text
    admin = keyed.get("/health", headers=bearer("ops")).json()
    assert replica in json.dumps(admin["detail"]["stages"])


def test_a_job_is_its_keys_own_and_an_admins(keyed: httpx.Client) -> None:
    created = keyed.post("/3d/generate", json={"prompt": "a red cube"}, headers=bearer("alice"))
    assert created.status_code == 200, created.text
    job_id = created.json()["job_id"]
    with httpx.Client(base_url=str(keyed.base_url), timeout=90, headers=bearer("alice")) as alice:
        assert wait_for_end(alice, job_id, timeout=90)["state"] == "completed"
    for method, route in [("GET", "status"), ("GET", "download"), ("GET", "preview"), ("POST", "cancel")]:
        refused = keyed.request(method, f"/3d/{route}/{job_id}", headers=bearer("bob"))
        assert refused.status_code == 403, (route, refused.text)
        assert refused.json()["code"] == "forbidden" and "another API key" in refused.json()["detail"]
    for name in ("alice", "ops"):
        assert keyed.get(f"/3d/status/{job_id}", headers=bearer(name)).status_code == 200
        download = keyed.get(f"/3d/download/{job_id}", headers=bearer(name))
        assert download.status_code == 200 and download.content[:4] == b"glTF"
        assert keyed.get(f"/3d/preview/{job_id}", headers=bearer(name)).status_code == 200
    # The admin may act on it too: cancelling a finished job is a 409, not a 403.
    assert keyed.post(f"/3d/cancel/{job_id}", headers=bearer("ops")).status_code == 409
    assert keyed.get("/3d/status/ffffffffffffffffffffffffffffffff", headers=bearer("bob")).status_code == 404


def test_job_list_shows_the_callers_own_jobs_and_an_admin_all(keyed: httpx.Client) -> None:
    mine = {
        name: {
            keyed.post("/3d/generate", json={"prompt": f"a cube for {name}"}, headers=bearer(name)).json()[
                "job_id"
            ]
            for _ in range(2)
        }
        for name in ("alice", "bob")
    }
    listed = {}
    for name in ("alice", "bob", "ops"):
        page = keyed.get("/3d/jobs", params={"limit": 100}, headers=bearer(name)).json()
        listed[name] = {job["job_id"] for job in page["jobs"]}
        assert page["total"] >= len(listed[name])
    assert mine["alice"] <= listed["alice"] and not mine["bob"] & listed["alice"]
    assert mine["bob"] <= listed["bob"] and not mine["alice"] & listed["bob"]
    assert mine["alice"] | mine["bob"] <= listed["ops"]
    bob_total = keyed.get("/3d/jobs", headers=bearer("bob")).json()["total"]
    assert bob_total == len(listed["bob"])  # the total counts the caller's jobs only
    for ids in mine.values():
        for job_id in ids:
            keyed.post(f"/3d/cancel/{job_id}", headers=bearer("ops"))


def test_image_paths_may_name_only_the_callers_own_uploads(keyed: httpx.Client) -> None:
    paths = upload_views(keyed, "alice")
    refused = keyed.post("/3d/from-image", json={"image_paths": paths}, headers=bearer("bob"))
    assert refused.status_code == 403, refused.text
    assert "not one of your uploads" in refused.json()["detail"]
    mixed = [*upload_views(keyed, "bob")[:3], paths[3]]
    assert keyed.post("/3d/from-image", json={"image_paths": mixed}, headers=bearer("bob")).status_code == 403
    for name in ("alice", "ops"):
        accepted = keyed.post("/3d/from-image", json={"image_paths": paths}, headers=bearer(name))
        assert accepted.status_code == 200, accepted.text
        keyed.post(f"/3d/cancel/{accepted.json()['job_id']}", headers=bearer("ops"))


def test_create_api_key_prints_a_key_and_an_entry_the_server_accepts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "create-api-key"), "studio-a", "--max-concurrent-jobs", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    key, entry = lines[1].strip(), json.loads(lines[3])
    assert key.startswith("mf_") and len(key) > 40 and key not in lines[3]
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps([entry]))
    ring = load_keys(OrchestratorSettings(api_keys_file=keys_file, default_requests_per_minute=7))
    caller = ring.caller_for(key)
    assert ring.enabled and caller is not None
    assert (caller.name, caller.admin, caller.max_concurrent_jobs, caller.requests_per_minute) == (
        "studio-a",
        False,
        2,
        7,
    )
    assert ring.caller_for(key + "x") is None


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('[{"name": "a"}]', "must be a JSON list"),
        ('[{"name": "a b", "sha256": "' + "0" * 64 + '"}]', "must be a JSON list"),
        (
            '[{"name": "a", "sha256": "' + "0" * 64 + '"}, {"name": "a", "sha256": "' + "1" * 64 + '"}]',
            "distinct",
        ),
    ],
)
def test_a_bad_key_list_stops_start_up_with_a_reason(keys: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_keys(OrchestratorSettings(api_keys=keys))


def test_keys_are_off_by_default_and_on_even_for_an_empty_list() -> None:
    assert not load_keys(OrchestratorSettings()).enabled
    assert load_keys(OrchestratorSettings(api_keys="[]")).enabled
