"""flux-service's offline procedural backend behind the batch API (in process, no model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flux_service.app import app
from meshforge.settings import load_settings

JOB = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_FLUX_BACKEND", "procedural")
    load_settings.cache_clear()
    with TestClient(app) as test_client:
        yield test_client
    load_settings.cache_clear()


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
    assert body["backend"] == "procedural"
    assert body["pipeline_calls"] == 2 and body["num_inference_steps"] is None
    assert [Path(image["image_path"]).name for image in body["images"]] == ["front.png", "back.png"]
    assert all(Path(image["image_path"]).is_file() for image in body["images"])


def test_single_generate_keeps_its_answer_and_reports_the_seed(client: TestClient, tmp_path: Path) -> None:
    target = tmp_path / "inputs" / "jobs" / JOB / "generated" / "00-front.png"
    request = {"prompt": "a tall blue cylinder", "width": 48, "height": 48, "output_path": str(target)}
    body = client.post("/generate", json=request).json()
    assert body["backend"] == "procedural" and body["image_b64"]
    assert isinstance(body["seed"], int)
    assert body["image_path"] == str(target) and target.is_file()


def test_a_request_without_its_output_path_is_refused_naming_the_field(
    client: TestClient, tmp_path: Path
) -> None:
    """No generated name any more: the caller (image-service, for the dispatcher) decides every path."""
    one = client.post("/generate", json={"prompt": "a red cube", "width": 48, "height": 48})
    assert one.status_code == 422
    assert one.json() == {"detail": "output_path: this field is required", "code": "invalid_request"}
    batch = client.post(
        "/generate/batch",
        json={
            "width": 64,
            "height": 64,
            "images": [{"prompt": "a red cube", "output_path": "b/1.png"}, {"prompt": "a cone"}],
        },
    )
    assert batch.status_code == 422
    assert batch.json()["detail"] == "images.1.output_path: this field is required"
    assert list((tmp_path / "inputs").rglob("*.png")) == []  # nothing of the batch was drawn


def test_an_output_path_outside_inputs_or_not_a_png_is_refused(client: TestClient, tmp_path: Path) -> None:
    for path, reason in [
        ("../escape.png", "outside inputs/"),
        (str(tmp_path / "outputs" / "x.png"), "outside inputs/"),
        ("jobs/x/drawn.jpg", "must name a .png file"),
    ]:
        answer = client.post(
            "/generate", json={"prompt": "a red cube", "width": 48, "height": 48, "output_path": path}
        )
        assert answer.status_code == 422, path
        assert reason in answer.json()["detail"], answer.json()
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "outputs" / "x.png").exists()


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
                {"prompt": "a portrait of a knight", "output_path": "b/2.png"},
            ],
        },
    )
    assert answer.status_code == 422
    assert "a portrait of a knight" in answer.json()["detail"]  # the prompt's refusal, not the schema's
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
