"""Every bad request gets a 4xx with a message a person understands, and creates no job."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.fleet

UNKNOWN = "0123456789abcdef0123456789abcdef"


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"prompt": "a red cube", "output_format": "ply"}, ["output_format", "glb", "obj", "fbx", "stl"]),
        ({"prompt": "a red cube", "quality_tier": "ultra"}, ["quality_tier", "standard", "high"]),
        ({"prompt": ""}, ["prompt"]),
        ({"prompt": "   "}, ["prompt is empty"]),
        ({}, ["prompt", "required"]),
        ({"prompt": "a red cube", "seed": -1}, ["seed"]),
        ({"prompt": "a red cube", "target_faces": 10}, ["target_faces", "100"]),
        ({"prompt": "a red cube", "origin": "top"}, ["origin", "bottom", "center"]),
        ({"prompt": "a red cube", "height_m": 0}, ["height_m"]),
        ({"prompt": "a red cube", "seed": True}, ["seed", "whole number"]),
        ({"prompt": "a red cube", "target_faces": "5000"}, ["target_faces", "whole number"]),
    ],
)
def test_generate_rejects_bad_bodies_with_a_readable_message(
    api: httpx.Client, body: dict, words: list[str]
) -> None:
    message = error(api.post("/3d/generate", json=body), 422)
    for word in words:
        assert word in message


def test_generate_rejects_a_body_that_is_not_json(api: httpx.Client) -> None:
    response = api.post("/3d/generate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert "JSON" in error(response, 422)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"image_urls": ["http://127.0.0.1:9/a.png"], "image_paths": ["uploads/x/00.png"]}, ["exactly one"]),
        ({}, ["exactly one"]),
        ({"image_paths": []}, ["empty"]),
        ({"image_urls": ["not a url"]}, ["image_urls"]),
        ({"image_paths": ["../../etc/passwd"]}, ["outside inputs/"]),
        ({"image_paths": ["uploads/nothing/here.png"]}, ["does not exist"]),
        ({"image_urls": ["http://127.0.0.1:9/a.png", "http://127.0.0.1:9/b.png"]}, ["2 images", "1, 4, 8"]),
    ],
)
def test_from_image_rejects_bad_sources(api: httpx.Client, body: dict, words: list[str]) -> None:
    message = error(api.post("/3d/from-image", json=body), 422)
    for word in words:
        assert word in message


def test_unknown_job_is_404_everywhere(api: httpx.Client) -> None:
    for response in (
        api.get(f"/3d/status/{UNKNOWN}"),
        api.get(f"/3d/download/{UNKNOWN}"),
        api.post(f"/3d/cancel/{UNKNOWN}"),
        api.get(f"/3d/preview/{UNKNOWN}"),
    ):
        assert UNKNOWN in error(response, 404)


def test_download_before_completion_is_409(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json={"prompt": "a red cube", "quality_tier": "high"}).json()["job_id"]
    message = error(api.get(f"/3d/download/{job_id}"), 409)
    assert "completed" in message
    assert "completed" in error(api.get(f"/3d/preview/{job_id}"), 409)
    api.post(f"/3d/cancel/{job_id}")


def test_upload_rejects_files_that_are_not_images(api: httpx.Client) -> None:
    files = [("files", ("notes.txt", b"hello, not an image", "text/plain"))]
    assert "notes.txt" in error(api.post("/3d/upload", files=files), 422)


def test_upload_rejects_more_images_than_a_view_set_holds(api: httpx.Client) -> None:
    files = [("files", (f"{i}.png", b"x", "image/png")) for i in range(9)]
    assert "at most 8" in error(api.post("/3d/upload", files=files), 422)


def test_upload_without_files_is_rejected(api: httpx.Client) -> None:
    assert "files" in error(api.post("/3d/upload", files={}), 422)


def test_job_list_rejects_an_out_of_range_limit(api: httpx.Client) -> None:
    assert "limit" in error(api.get("/3d/jobs", params={"limit": 1000}), 422)


def test_a_missing_or_non_object_body_is_named_as_such(api: httpx.Client) -> None:
    assert "needs a JSON body" in error(api.post("/3d/generate"), 422)
    assert "must be a JSON object" in error(api.post("/3d/generate", json=["a red cube"]), 422)


def test_a_wrong_method_is_405_with_the_allowed_ones(api: httpx.Client) -> None:
    response = api.delete("/3d/generate")
    error(response, 405)
    assert response.headers["allow"] == "POST"


def test_an_absurd_page_offset_is_a_422_not_a_server_error(api: httpx.Client) -> None:
    assert "offset" in error(api.get("/3d/jobs", params={"offset": 10**20}), 422)
