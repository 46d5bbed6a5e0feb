"""Images drawn by flux-service replicas (FLUX.1 on GPUs 0–3, or its offline procedural backend).

Requests run in parallel, at most one per replica at a time, so each replica stays busy without being
flooded with requests it would refuse.
"""

from __future__ import annotations

import asyncio

from meshforge.http import ReplicaPool
from meshforge.schemas import FluxGenerateRequest, FluxGenerateResponse

# flux-service backends that are renderers: they pose the canonical camera named by ``view``.
POSED_VIEW_BACKENDS = frozenset({"procedural-shapes"})


class FluxReplicas:
    name = "flux-service"

    def __init__(self, pool: ReplicaPool) -> None:
        self._pool = pool
        self._slots = asyncio.Semaphore(len(pool.urls))
        self._posed: bool | None = None

    async def draw(self, request: FluxGenerateRequest) -> FluxGenerateResponse:
        async with self._slots:
            answer, _ = await self._pool.post("/generate", request, FluxGenerateResponse)
        return answer

    async def draws_posed_views(self) -> bool:
        """Asked once of the replicas' /health (all replicas of a stage run one backend)."""
        if self._posed is None:
            backends = {
                str(h.get("backend")) for h in (await self._pool.health()).values() if h.get("backend")
            }
            if not backends:
                return False  # nobody answered: the generation call itself will report it
            self._posed = bool(backends & POSED_VIEW_BACKENDS)
        return self._posed
