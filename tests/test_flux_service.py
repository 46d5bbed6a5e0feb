"""flux-service as a real process with MESHFORGE_FLUX_BACKEND=diffusers on a tiny random FLUX.1 pipeline.

Proves the production path end to end on CPU: start-up load from models/, /generate, /generate/batch,
seeds, one request at a time (503 + Retry-After), and the start-up refusal when no model is there.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from meshforge.settings import is_settings_variable
from tests.fleet import REPO, Process, free_port, wait_until
from tests.tiny_flux import build_tiny_flux


def start_flux(data_dir: Path, name: str, **settings: str) -> tuple[Process, str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not is_settings_variable(k)},
        "MESHFORGE_DATA_DIR": str(data_dir),
        "MESHFORGE_FLUX_SERVICE_PORT": str(port),
        "MESHFORGE_FLUX_BACKEND": "diffusers",
        "MESHFORGE_FLUX_DEVICE": "cpu",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    log = data_dir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    popen = subprocess.Popen(
        [sys.executable, "-m", "flux_service"],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return Process(name, popen, log), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def flux(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    data_dir = tmp_path_factory.mktemp("flux-service")
    build_tiny_flux(data_dir / "models")
    process, url = start_flux(data_dir, "flux", MESHFORGE_FLUX_MAX_BATCH="2")
    try:
        wait_until(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, 90, "flux-service")
    except TimeoutError:
        process.stop()
        raise RuntimeError(process.tail()) from None
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client, data_dir
    process.stop()


def drawn_at(data_dir: Path) -> str:
    """A fresh PNG path, where image-service has a job's view drawn: inputs/jobs/<id>/generated/."""
    return str(data_dir / "inputs" / "jobs" / uuid.uuid4().hex / "generated" / "00-front.png")


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_health_reports_the_hot_flux_model(flux: tuple[httpx.Client, Path]) -> None:
    client, data_dir = flux
    health = client.get("/health").json()
    assert health["backend"] == "diffusers"
    assert health["busy"] is False
    assert health["detail"]["folder"] == str(data_dir / "models" / "black-forest-labs" / "FLUX.1-schnell")
    assert health["detail"]["steps"] == 4 and health["detail"]["max_batch"] == 2


def test_generate_writes_the_png_and_returns_it(flux: tuple[httpx.Client, Path]) -> None:
    client, data_dir = flux
    answer = client.post(
        "/generate",
        json={"prompt": "a red cube", "width": 48, "height": 32, "seed": 5, "output_path": "t/a.png"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["image_path"] == str(data_dir / "inputs" / "t" / "a.png")
    assert (body["seed"], body["num_inference_steps"], body["guidance_scale"]) == (5, 4, 0.0)
    written = np.asarray(Image.open(body["image_path"]).convert("RGB"))
    assert written.shape == (32, 48, 3)
    assert np.array_equal(written, decode(body["image_b64"]))


def test_same_seed_same_image_and_a_seed_is_reported_when_none_is_given(
    flux: tuple[httpx.Client, Path],
) -> None:
    client, data_dir = flux
    request = {"prompt": "a blue sphere", "width": 32, "height": 32}

    def draw(**extra: object) -> dict:
        return client.post("/generate", json={**request, "output_path": drawn_at(data_dir), **extra}).json()

    first, again = draw(seed=9), draw(seed=9)
    assert first["image_b64"] == again["image_b64"] and first["image_path"] != again["image_path"]
    drawn = draw()
    replay = draw(seed=drawn["seed"])
    assert drawn["image_b64"] == replay["image_b64"]


def test_batch_draws_every_prompt_in_calls_of_max_batch_like_single_requests(
    flux: tuple[httpx.Client, Path],
) -> None:
    client, data_dir = flux
    folder = data_dir / "inputs" / "jobs" / uuid.uuid4().hex / "generated"
    images = [
        {
            "prompt": f"view {i} of a wooden chair",
            "seed": 100 + i,
            "output_path": str(folder / f"{i:02d}.png"),
        }
        for i in range(3)
    ]
    answer = client.post("/generate/batch", json={"width": 32, "height": 32, "images": images})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["pipeline_calls"] == 2  # max batch 2: 2 + 1
    assert [image["seed"] for image in body["images"]] == [100, 101, 102]
    assert [image["image_path"] for image in body["images"]] == [spec["output_path"] for spec in images]
    for spec, image in zip(images, body["images"], strict=True):
        alone_spec = {**spec, "output_path": drawn_at(data_dir), "width": 32, "height": 32}
        alone = client.post("/generate", json=alone_spec).json()
        assert np.abs(decode(image["image_b64"]).astype(int) - decode(alone["image_b64"])).max() <= 1


def test_b64_can_be_switched_off(flux: tuple[httpx.Client, Path]) -> None:
    client, data_dir = flux
    target = drawn_at(data_dir)
    body = client.post(
        "/generate/batch",
        json={
            "width": 32,
            "height": 32,
            "return_b64": False,
            "images": [{"prompt": "a cone", "output_path": target}],
        },
    ).json()
    assert body["images"][0]["image_b64"] is None
    assert body["images"][0]["image_path"] == target and Path(target).is_file()


def test_a_request_without_its_output_path_is_refused_naming_the_field(
    flux: tuple[httpx.Client, Path],
) -> None:
    """flux-service makes up no file name: its caller decides where each image goes."""
    client, data_dir = flux
    before = sorted(data_dir.rglob("*.png"))
    one = client.post("/generate", json={"prompt": "a red cube", "width": 32, "height": 32})
    assert one.status_code == 422, one.text
    assert one.json() == {"detail": "output_path: this field is required", "code": "invalid_request"}
    batch = {
        "width": 32,
        "height": 32,
        "images": [{"prompt": "a red cube", "output_path": drawn_at(data_dir)}, {"prompt": "a cone"}],
    }
    answer = client.post("/generate/batch", json=batch)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == "images.1.output_path: this field is required"
    assert sorted(data_dir.rglob("*.png")) == before  # nothing was drawn


def test_sizes_flux_cannot_draw_get_a_422_that_says_why(flux: tuple[httpx.Client, Path]) -> None:
    client, data_dir = flux
    body = {"prompt": "a red cube", "width": 100, "height": 96, "output_path": drawn_at(data_dir)}
    answer = client.post("/generate", json=body)
    assert answer.status_code == 422
    assert "multiples of 16" in answer.json()["detail"] and "use 96 or 112" in answer.json()["detail"]


def test_a_second_request_while_busy_gets_503_with_retry_after(flux: tuple[httpx.Client, Path]) -> None:
    client, data_dir = flux
    images = [{"prompt": "x", "output_path": drawn_at(data_dir)} for _ in range(8)]
    slow = {"width": 256, "height": 256, "num_inference_steps": 8, "images": images}
    done: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: done.append(client.post("/generate/batch", json=slow)))
    worker.start()
    try:
        wait_until(lambda: client.get("/health").json()["busy"], 30, "flux-service busy", interval=0.01)
        one = {"prompt": "a red cube", "width": 32, "height": 32, "output_path": drawn_at(data_dir)}
        refused = client.post("/generate", json=one)
    finally:
        worker.join()
    assert refused.status_code == 503
    assert refused.json()["code"] == "busy"
    assert int(refused.headers["retry-after"]) >= 1
    assert done[0].status_code == 200, done[0].text


def test_without_a_model_the_service_refuses_to_start_and_says_how_to_download(tmp_path: Path) -> None:
    process, _ = start_flux(tmp_path, "flux-no-model")
    try:
        process.popen.wait(timeout=90)
    finally:
        process.stop()
    log = process.log.read_text()
    assert process.popen.returncode != 0
    assert "flux-service cannot start: model black-forest-labs/FLUX.1-schnell not found" in log
    assert str(tmp_path / "models" / "black-forest-labs" / "FLUX.1-schnell") in log
    assert "scripts/download-models black-forest-labs/FLUX.1-schnell" in log
