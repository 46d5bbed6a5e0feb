"""Images drawn by flux-service replicas (FLUX.1 on GPUs 0–3, or its offline procedural backend).

Requests run in parallel, at most one per replica at a time, so each replica stays busy without being
flooded with requests it would refuse. Several images of one job are split evenly over the replicas and
sent as one ``/generate/batch`` call each: one batched pipeline call on a GPU beats several single ones.

Progress is counted in views (the image stage reports ``0 of N views`` when it starts): each call that
comes back adds the views it drew, and ``progress`` adds the share of the calls in flight that their
replicas have drawn so far (their denoising steps, or images) as the job's work reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from meshforge.cancellation import current_job_id, current_progress
from meshforge.errors import BackendError
from meshforge.http import ReplicaPool
from meshforge.progress import ProgressAnswer
from meshforge.schemas import Capabilities
from meshforge.stage_schemas import (
    FluxBatchRequest,
    FluxBatchResponse,
    FluxGenerateRequest,
    FluxGenerateResponse,
    FluxImageSpec,
)

VIEWS = "views"
PROGRESS_TIMEOUT_SECONDS = 0.5  # under the dispatcher's own wait for this service's answer


@dataclass(eq=False)  # compared by identity: two calls of one job may look alike for a moment
class _Call:
    """A flux call of a job in flight: the views it draws, and the replica holding it once sent."""

    views: int
    replica: str | None = None

    def held_by(self, replica: str) -> None:
        self.replica = replica


class FluxReplicas:
    name = "flux-service"

    def __init__(self, pool: ReplicaPool) -> None:
        self._pool = pool
        self._slots = asyncio.Semaphore(len(pool.urls))
        self._posed: bool | None = None
        self._in_flight: dict[str, list[_Call]] = {}  # job id -> its calls being drawn

    async def draw(self, request: FluxGenerateRequest) -> FluxGenerateResponse:
        request = request.model_copy(update={"job_id": request.job_id or current_job_id()})
        # An image drawn for no view in particular is a sheet: it holds every view still to draw.
        with self._counted(request.job_id, 1 if request.view else _views_left()) as call:
            async with self._slots:
                answer, _ = await self._pool.post(
                    "/generate", request, FluxGenerateResponse, on_attempt=call.held_by
                )
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
        with self._counted(body.job_id, len(requests)) as call:
            async with self._slots:
                answer, _ = await self._pool.post(
                    "/generate/batch", body, FluxBatchResponse, on_attempt=call.held_by
                )
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

    @contextlib.contextmanager
    def _counted(self, job_id: str | None, views: int) -> Iterator[_Call]:
        """The call in flight while inside; its views count as drawn once it comes back."""
        call = _Call(views)
        calls = self._in_flight.setdefault(job_id, []) if job_id is not None else []
        calls.append(call)
        try:
            yield call
            counted = current_progress()
            if counted is not None:
                counted.advance(views)
        finally:
            calls.remove(call)
            if job_id is not None and not calls:
                del self._in_flight[job_id]

    async def progress(self, job_id: str, answer: ProgressAnswer) -> ProgressAnswer:
        """``answer`` (the views of the calls that came back) plus the share of the views in flight that
        their replicas have drawn so far; a replica that does not tell adds nothing."""
        calls = [call for call in self._in_flight.get(job_id, ()) if call.replica is not None]
        if not calls or not answer.counted or answer.unit != VIEWS:
            return answer
        reports = await asyncio.gather(
            *(
                self._pool.work_progress(call.replica, job_id, PROGRESS_TIMEOUT_SECONDS)
                for call in calls
                if call.replica is not None
            )
        )
        share = sum(
            call.views * report.fraction
            for call, report in zip(calls, reports, strict=True)
            if report is not None and report.counted
        )
        return answer.model_copy(update={"done": min(answer.total, answer.done + int(share))})

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


def _views_left() -> int:
    """The views of the current job not drawn yet (at least one), as its progress counts them."""
    counted = current_progress()
    if counted is None:
        return 1
    done, total, unit = counted.snapshot()
    return max(1, total - done) if unit == VIEWS else 1
