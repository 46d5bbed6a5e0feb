"""How many views the image stage draws for a prompt: the tier's, unless no reconstruction replica
would use them.

Reconstruction replicas advertise what their backend makes use of in their /health ``capabilities``
(``max_views``, ``image_size``). A single-image model such as TripoSR uses only the front view, so
drawing a whole turnaround sheet for it would spend GPU time on seven views it ignores and give it one
small cell; it gets one front view at its own working size instead. Pools that mix backends get the
tier's views, which every backend can use. The dispatcher never learns which model runs, only what it
consumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from meshforge.http import ReplicaPool
from meshforge.schemas import CANONICAL_VIEW_COUNTS, Capabilities, ViewCount
from meshforge.settings import TierProfile


@dataclass(frozen=True)
class ViewPlan:
    views: ViewCount
    image_size: int
    reason: str | None = None  # why the plan differs from the tier, for the job's stage message


class ViewPlanner:
    def __init__(self, pool: ReplicaPool, refresh_seconds: float = 30.0) -> None:
        self._pool = pool
        self._refresh_seconds = refresh_seconds
        self._inputs: list[Capabilities] = []
        self._read_at = -float("inf")

    async def plan(self, tier: TierProfile) -> ViewPlan:
        inputs = await self._replica_inputs()
        if not inputs:
            return ViewPlan(tier.views, tier.image_size)
        if any(i.max_views is None for i in inputs):
            return ViewPlan(tier.views, tier.image_size)  # a replica that does not say uses them all
        used = max(i.max_views or 0 for i in inputs)
        if used >= tier.views:
            return ViewPlan(tier.views, tier.image_size)
        views = max(count for count in CANONICAL_VIEW_COUNTS if count <= used)
        size = max([tier.image_size, *(i.image_size or 0 for i in inputs)])
        reason = f"the reconstruction backend uses {used} view{'s' if used > 1 else ''}"
        return ViewPlan(views, size, reason)

    async def _replica_inputs(self) -> list[Capabilities]:
        """The answering replicas' inputs, read at most every ``refresh_seconds``."""
        if time.monotonic() - self._read_at < self._refresh_seconds:
            return self._inputs
        self._inputs = Capabilities.declared_in((await self._pool.health()).values())
        self._read_at = time.monotonic()
        return self._inputs
