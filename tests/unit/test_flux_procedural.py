"""flux-service's offline procedural backend behind the batch API (in process, no model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flux_service.app import app
from meshforge.settings import get_settings


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_FLUX_BACKEND", "procedural")
    get_settings.cache_clear()
    with TestClient(app) as test_client:
        yield test_client
    get_settings.cache_clear()


def test_the_procedural_backend_draws_a_batch_one_view_each(client: TestClient) -> None:
    body = client.post(
        "/generate/batch",
        json={
            "width": 64,
            "height": 64,
            "return_b64": False,
            "images": [
                {"prompt": "a red cube", "view": "front", "output_path": "v/front.png"},
                {"prompt": "a red cube", "view": "back", "output_path": "v/back.png"},
            ],
        },
    ).json()
    assert body["backend"] == "procedural-shapes"
    assert body["pipeline_calls"] == 2 and body["num_inference_steps"] is None
    assert [Path(image["image_path"]).name for image in body["images"]] == ["front.png", "back.png"]
    assert all(Path(image["image_path"]).is_file() for image in body["images"])


def test_single_generate_keeps_its_answer_and_reports_the_seed(client: TestClient) -> None:
    body = client.post("/generate", json={"prompt": "a tall blue cylinder", "width": 48, "height": 48}).json()
    assert body["backend"] == "procedural-shapes" and body["image_b64"]
    assert isinstance(body["seed"], int)


def test_a_bad_prompt_fails_the_whole_batch_before_anything_is_written(
    client: TestClient, tmp_path: Path
) -> None:
    answer = client.post(
        "/generate/batch",
        json={
            "width": 64,
            "height": 64,
            "images": [
                {"prompt": "a red cube", "output_path": "b/1.png"},
                {"prompt": "a portrait of a knight"},
            ],
        },
    )
    assert answer.status_code == 422
    assert not (tmp_path / "inputs" / "b" / "1.png").exists()


def test_a_batch_may_not_write_two_images_to_one_path(client: TestClient) -> None:
    answer = client.post(
        "/generate/batch",
        json={
            "images": [
                {"prompt": "a cube", "output_path": "x.png"},
                {"prompt": "a cone", "output_path": "x.png"},
            ]
        },
    )
    assert answer.status_code == 422
    assert "same output_path" in answer.json()["detail"]
