"""Images drawn by flux-service replicas (FLUX.1 on GPUs 0–3, or its offline procedural backend).

Requests run in parallel, at most one per replica at a time, so each replica stays busy without being
flooded with requests it would refuse. Several images of one job are split evenly over the replicas and
sent as one ``/generate/batch`` call each: one batched pipeline call on a GPU beats several single ones.
"""

from __future__ import annotations

import asyncio

from meshforge.cancellation import current_job_id
from meshforge.errors import BackendError
from meshforge.http import ReplicaPool
from meshforge.schemas import Capabilities
from meshforge.stage_schemas import (
    FluxBatchRequest,
    FluxBatchResponse,
    FluxGenerateRequest,
    FluxGenerateResponse,
    FluxImageSpec,
)


class FluxReplicas:
    name = "flux-service"

    def __init__(self, pool: ReplicaPool) -> None:
        self._pool = pool
        self._slots = asyncio.Semaphore(len(pool.urls))
        self._posed: bool | None = None

    async def draw(self, request: FluxGenerateRequest) -> FluxGenerateResponse:
        request = request.model_copy(update={"job_id": request.job_id or current_job_id()})
        async with self._slots:
            answer, _ = await self._pool.post("/generate", request, FluxGenerateResponse)
        return answer

    async def draw_many(self, requests: list[FluxGenerateRequest]) -> list[FluxGenerateResponse]:
        if len(requests) == 1:
            return [await self.draw(requests[0])]
        groups = min(len(self._pool.urls), len(requests))
        batches = [requests[index::groups] for index in range(groups)]
        answers = await asyncio.gather(*(self._batch(batch) for batch in batches))
        # Batch g holds requests g, g + groups, g + 2·groups…: put the answers back in request order.
        by_request = {
            group + offset * groups: image
            for group, answer in enumerate(answers)
            for offset, image in enumerate(answer)
        }
        return [by_request[index] for index in range(len(requests))]

    async def _batch(self, requests: list[FluxGenerateRequest]) -> list[FluxGenerateResponse]:
        options = requests[0]
        body = FluxBatchRequest(
            width=options.width,
            height=options.height,
            num_inference_steps=options.num_inference_steps,
            guidance_scale=options.guidance_scale,
            return_b64=False,
            job_id=options.job_id or current_job_id(),  # the job's cancel reaches the replicas
            images=[
                FluxImageSpec(prompt=r.prompt, seed=r.seed, view=r.view, output_path=r.output_path)
                for r in requests
            ],
        )
        async with self._slots:
            answer, _ = await self._pool.post("/generate/batch", body, FluxBatchResponse)
        if len(answer.images) != len(requests):
            raise BackendError(
                f"flux-service drew {len(answer.images)} images for a batch of {len(requests)}"
            )
        return [
            FluxGenerateResponse(
                **image.model_dump(),
                backend=answer.backend,
                seconds=answer.seconds,
                num_inference_steps=answer.num_inference_steps,
                guidance_scale=answer.guidance_scale,
            )
            for image in answer.images
        ]

    async def cancel(self, job_id: str) -> int:
        """Tell every replica to abandon ``job_id``'s drawing; never raises."""
        return await self._pool.cancel(job_id)

    async def draws_posed_views(self) -> bool:
        """Asked once of the replicas' /health ``capabilities`` (all replicas of a stage run one
        backend): a renderer poses the canonical camera named by a request's ``view`` itself."""
        if self._posed is None:
            declared = Capabilities.declared_in((await self._pool.health()).values())
            if not declared:
                return False  # nobody answered: the generation call itself will report it
            self._posed = all(capabilities.posed_views for capabilities in declared)
        return self._posed
