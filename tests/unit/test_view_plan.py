"""The dispatcher draws only as many views as the reconstruction replicas use."""

from __future__ import annotations

import asyncio
from typing import Any

from meshforge.schemas import QualityTier
from meshforge.settings import DEFAULT_TIERS
from orchestrator.view_plan import ViewPlan, ViewPlanner

STANDARD = DEFAULT_TIERS[QualityTier.standard]  # 8 views at 256²
TRIPOSR = {"status": "ok", "capabilities": {"max_views": 1, "image_size": 512}}
VISUAL_HULL = {"status": "ok", "capabilities": {"max_views": 8, "image_size": None}}
DOWN = {"status": "unreachable", "error": "connection refused"}


class FakePool:
    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls = 0

    async def health(self) -> dict[str, dict]:
        self.calls += 1
        return {f"http://replica-{i}": answer for i, answer in enumerate(self.answers)}


def plan(pool: FakePool) -> ViewPlan:
    return asyncio.run(ViewPlanner(pool).plan(STANDARD))  # type: ignore[arg-type]


def test_single_image_replicas_get_one_front_view_at_their_size() -> None:
    assert plan(FakePool(TRIPOSR, TRIPOSR, DOWN)) == ViewPlan(
        1, 512, "the reconstruction backend uses 1 view"
    )


def test_multi_view_and_mixed_pools_get_the_tiers_views() -> None:
    assert plan(FakePool(VISUAL_HULL)) == ViewPlan(8, 256)
    assert plan(FakePool(TRIPOSR, VISUAL_HULL)) == ViewPlan(8, 256)


def test_replicas_that_do_not_say_leave_the_tier_alone() -> None:
    assert plan(FakePool(DOWN, {"status": "ok", "detail": {}})) == ViewPlan(8, 256)


def test_replica_inputs_are_read_once_per_refresh_interval() -> None:
    pool = FakePool(TRIPOSR)
    planner = ViewPlanner(pool, refresh_seconds=60)  # type: ignore[arg-type]

    async def twice() -> None:
        await planner.plan(STANDARD)
        await planner.plan(STANDARD)

    asyncio.run(twice())
    assert pool.calls == 1
