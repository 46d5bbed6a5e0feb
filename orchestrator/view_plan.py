"""Which reconstruction replicas a job goes to, and how many views the image stage draws for them.

Reconstruction replicas advertise in their /health the backend they run (``backend``) and what it
makes use of (``capabilities``: ``max_views``, ``image_size``). The dispatcher never learns which
model runs, only those two answers:

- **Replicas.** A quality tier may name a backend it prefers (``TierProfile.reconstruction_backend``,
  e.g. ``high`` → ``instantmesh``). Where some answering replicas run it, the tier's jobs go to those
  only; where none does, to any replica, and the stage message says so.
- **Views.** A single-image model such as TripoSR uses only the front view, so drawing a whole
  turnaround sheet for it would spend GPU time on seven views it ignores and give it one small cell; it
  gets one front view at its own working size instead. Replicas that mix backends get the tier's
  views, which every backend can use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from meshforge.http import ReplicaPool
from meshforge.schemas import CANONICAL_VIEW_COUNTS, Capabilities, ViewCount
from meshforge.settings import TierProfile


@dataclass(frozen=True)
class ViewPlan:
    views: ViewCount
    image_size: int
    reason: str | None = None  # why the plan differs from the tier, for the job's stage message
    replicas: tuple[str, ...] | None = None  # the replicas the job goes to; None: any
    routing: str | None = None  # how the replicas were chosen, for the reconstruction stage message


@dataclass(frozen=True)
class Replica:
    """One reconstruction replica as its last /health answer described it."""

    url: str
    backend: str | None
    capabilities: Capabilities | None


class ViewPlanner:
    def __init__(self, pool: ReplicaPool, refresh_seconds: float = 30.0) -> None:
        self._pool = pool
        self._refresh_seconds = refresh_seconds
        self._replicas: list[Replica] = []
        self._read_at = -float("inf")

    async def plan(self, tier: TierProfile) -> ViewPlan:
        replicas = await self._answering_replicas()
        chosen, routing = _route(replicas, tier.reconstruction_backend)
        views, size, reason = _views(tier, [r.capabilities for r in chosen if r.capabilities])
        only = tuple(r.url for r in chosen) if chosen is not replicas else None
        return ViewPlan(views, size, reason, only, routing)

    async def _answering_replicas(self) -> list[Replica]:
        """The replicas that answered /health, read at most every ``refresh_seconds``."""
        if time.monotonic() - self._read_at < self._refresh_seconds:
            return self._replicas
        answers = await self._pool.health()
        self._replicas = [_replica(url, answer) for url, answer in answers.items() if _ok(answer)]
        self._read_at = time.monotonic()
        return self._replicas


def _route(replicas: list[Replica], preferred: str | None) -> tuple[list[Replica], str | None]:
    if preferred is None:
        return replicas, None
    running = [r for r in replicas if r.backend == preferred]
    if not running:
        return replicas, f"no replica runs the tier's {preferred}"
    if len(running) == len(replicas):
        return replicas, None  # every replica runs it: nothing to choose
    return running, f"on the {preferred} replicas, as the tier prefers"


def _views(tier: TierProfile, inputs: list[Capabilities]) -> tuple[ViewCount, int, str | None]:
    if not inputs or any(i.max_views is None for i in inputs):
        return tier.views, tier.image_size, None  # a replica that does not say uses them all
    used = max(i.max_views or 0 for i in inputs)
    if used >= tier.views:
        return tier.views, tier.image_size, None
    views = max(count for count in CANONICAL_VIEW_COUNTS if count <= used)
    size = max([tier.image_size, *(i.image_size or 0 for i in inputs)])
    return views, size, f"the reconstruction backend uses {used} view{'s' if used > 1 else ''}"


def _ok(answer: dict[str, Any]) -> bool:
    return answer.get("status") == "ok"


def _replica(url: str, answer: dict[str, Any]) -> Replica:
    try:
        capabilities = Capabilities.model_validate(answer["capabilities"])
    except (KeyError, TypeError, ValidationError):
        capabilities = None
    backend = answer.get("backend")
    return Replica(url, backend if isinstance(backend, str) else None, capabilities)
