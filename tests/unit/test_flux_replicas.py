"""image-service spreads a job's images over the flux replicas as one batch call per replica."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from image_service.backends.flux_replicas import FluxReplicas
from meshforge.stage_schemas import FluxBatchRequest, FluxBatchResponse, FluxGenerateRequest, FluxImage


class FakePool:
    """Answers /generate/batch like flux-service, recording each call."""

    def __init__(self, replicas: int) -> None:
        self.urls = [f"http://flux-{i}" for i in range(replicas)]
        self.batches: list[list[str]] = []

    async def post(self, path: str, body: FluxBatchRequest, model: type, **_: Any) -> tuple[Any, str]:
        assert path == "/generate/batch" and not body.return_b64
        self.batches.append([image.prompt for image in body.images])
        images = [FluxImage(image_path=image.output_path, seed=image.seed) for image in body.images]
        return FluxBatchResponse(images=images, backend="fake", seconds=0.1, pipeline_calls=1), self.urls[0]


FOLDER = "/data/inputs/jobs/0123456789abcdef0123456789abcdef/generated"  # where image-service draws


def requests(count: int) -> list[FluxGenerateRequest]:
    return [
        FluxGenerateRequest(
            prompt=f"view-{i}", seed=i, width=64, height=64, output_path=f"{FOLDER}/{i:02d}.png"
        )
        for i in range(count)
    ]


def test_eight_views_on_two_replicas_are_two_batches_of_four_answered_in_order() -> None:
    pool = FakePool(replicas=2)
    answers = asyncio.run(FluxReplicas(pool).draw_many(requests(8)))  # type: ignore[arg-type]
    assert sorted(len(batch) for batch in pool.batches) == [4, 4]
    assert [a.image_path for a in answers] == [f"{FOLDER}/{i:02d}.png" for i in range(8)]  # each where asked
    assert [a.seed for a in answers] == list(range(8))
    assert all(a.backend == "fake" for a in answers)


def test_never_more_batches_than_images() -> None:
    pool = FakePool(replicas=4)
    answers = asyncio.run(FluxReplicas(pool).draw_many(requests(3)))  # type: ignore[arg-type]
    assert sorted(len(batch) for batch in pool.batches) == [1, 1, 1]
    assert [a.image_path for a in answers] == [f"{FOLDER}/{i:02d}.png" for i in range(3)]


def test_a_drawing_request_needs_its_output_path() -> None:
    with pytest.raises(ValidationError, match="output_path"):
        FluxGenerateRequest(prompt="a cube", width=64, height=64)  # type: ignore[call-arg]


class RetryingPool(FakePool):
    """Batch 0 is sent to flux-0, waits, and is retried on flux-1; batch 1 is answered by flux-0 at once."""

    def __init__(self) -> None:
        super().__init__(replicas=2)
        self.first_may_end = asyncio.Event()

    async def post(self, path: str, body: FluxBatchRequest, model: type, **options: Any) -> tuple[Any, str]:
        first = body.images[0].prompt == "view-0"
        options["on_attempt"](self.urls[0])
        if first:
            await self.first_may_end.wait()
            options["on_attempt"](self.urls[1])  # flux-0 gave no answer: tried again on flux-1
        else:
            self.first_may_end.set()
        return await super().post(path, body, model)


def test_two_calls_of_one_job_in_flight_are_each_accounted_for_whatever_order_they_end() -> None:
    """Two calls of a job can look alike for a moment (same views, same replica); the one that ends
    first must forget itself, not its twin (which once failed a job with an internal error)."""
    job_id = "0123456789abcdef0123456789abcdef"
    asked = [r.model_copy(update={"job_id": job_id}) for r in requests(8)]
    replicas = FluxReplicas(RetryingPool())  # type: ignore[arg-type]
    answers = asyncio.run(replicas.draw_many(asked))
    assert [a.image_path for a in answers] == [f"{FOLDER}/{i:02d}.png" for i in range(8)]
    assert replicas._in_flight == {}  # every call forgotten once it ended
