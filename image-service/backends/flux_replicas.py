"""Views drawn by flux-service replicas (FLUX.1 on GPUs 0–3, or its offline procedural backend).

Views are requested in parallel, at most one per replica at a time, so each replica stays busy
without being flooded with requests it would refuse.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from image_service.prompts import view_prompt, view_seed
from meshforge.geometry.views import CanonicalView
from meshforge.http import ReplicaPool
from meshforge.schemas import FluxGenerateRequest, FluxGenerateResponse


class FluxReplicas:
    name = "flux-service"

    def __init__(self, pool: ReplicaPool) -> None:
        self._pool = pool
        self._slots = asyncio.Semaphore(len(pool.urls))

    async def generate(
        self, prompt: str, views: tuple[CanonicalView, ...], image_size: int, seed: int | None, folder: Path
    ) -> tuple[list[Path], str]:
        answers = await asyncio.gather(
            *(self._one(prompt, view, index, image_size, seed, folder) for index, view in enumerate(views))
        )
        backends = sorted({answer.backend for answer in answers})
        return [Path(answer.image_path) for answer in answers], f"{self.name}:{'+'.join(backends)}"

    async def _one(
        self, prompt: str, view: CanonicalView, index: int, size: int, seed: int | None, folder: Path
    ) -> FluxGenerateResponse:
        body = FluxGenerateRequest(
            prompt=view_prompt(prompt, view),
            width=size,
            height=size,
            seed=view_seed(seed, index),
            view=view.name,
            output_path=str(folder / f"{index:02d}-{view.name}.png"),
            return_b64=False,
        )
        async with self._slots:
            answer, _ = await self._pool.post("/generate", body, FluxGenerateResponse)
        return answer
