"""A job's views: the status record lists the views (and sheet) its image stage made, and
GET /3d/views/{id}/{name} serves exactly those, as PNG, to whoever may see the job."""

from __future__ import annotations

import httpx
import pytest

from tests.api_keys import bearer
from tests.fleet import Fleet, wait_for_end

pytestmark = pytest.mark.fleet

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_prompt_job_lists_its_eight_views_and_sheet_and_serves_them(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"]
    status = wait_for_end(api, job_id)
    views = status["views"]
    assert [v["kind"] for v in views] == ["view"] * 8 + ["sheet"]
    assert views[0] == {"name": "00-front.png", "kind": "view", "url": f"/3d/views/{job_id}/00-front.png"}
    for listed in views:
        answer = api.get(listed["url"])
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/png"
        assert answer.content.startswith(PNG)


def test_a_queued_job_lists_no_views_yet(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json={"prompt": "a red cube", "quality_tier": "high"}).json()["job_id"]
    assert api.get(f"/3d/status/{job_id}").json()["views"] == []
    api.post(f"/3d/cancel/{job_id}")


def test_only_listed_views_are_served(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"]
    wait_for_end(api, job_id)
    assert api.get(f"/3d/views/{job_id}/09-top.png").status_code == 404
    for hostile in ["..%2F..%2Fsecrets.png", "00-front.png%00.txt", "00-FRONT.png", "x" * 80 + ".png"]:
        assert api.get(f"/3d/views/{job_id}/{hostile}").status_code in {404, 422}, hostile
    assert api.get(f"/3d/views/{'0' * 32}/00-front.png").status_code == 404


def test_an_image_job_lists_the_views_it_reconstructed_without_a_sheet(api: httpx.Client) -> None:
    source = wait_for_end(api, api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"])
    front = api.get(source["views"][0]["url"]).content
    paths = api.post("/3d/upload", files={"files": ("front.png", front, "image/png")}).json()["image_paths"]
    job_id = api.post("/3d/from-image", json={"image_paths": paths}).json()["job_id"]
    status = wait_for_end(api, job_id)
    assert [v["kind"] for v in status["views"]] == ["view"]
    assert api.get(status["views"][0]["url"]).content.startswith(PNG)


def test_with_keys_on_views_are_their_jobs_owners(keys_fleet: Fleet) -> None:
    with (
        httpx.Client(base_url=keys_fleet.api, timeout=30) as anyone,
        httpx.Client(base_url=keys_fleet.api, timeout=30, headers=bearer("alice")) as alice,
    ):
        job_id = alice.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"]
        url = wait_for_end(alice, job_id)["views"][0]["url"]
        assert anyone.get(url, headers=bearer("bob")).status_code == 403
        assert anyone.get(url).status_code == 401
        assert alice.get(url).status_code == 200
