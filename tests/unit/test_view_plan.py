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


HIGH = DEFAULT_TIERS[QualityTier.high]  # prefers instantmesh
INSTANTMESH = {"status": "ok", "backend": "instantmesh", "capabilities": {"max_views": 1, "image_size": 320}}
HULL = {"status": "ok", "backend": "visual_hull", "capabilities": {"max_views": 8, "image_size": None}}


def plan_for(tier: Any, *answers: dict[str, Any]) -> ViewPlan:
    return asyncio.run(ViewPlanner(FakePool(*answers)).plan(tier))  # type: ignore[arg-type]


def test_a_tier_preferring_a_backend_goes_to_its_replicas_and_plans_views_for_them_alone() -> None:
    planned = plan_for(HIGH, HULL, INSTANTMESH, HULL)
    assert planned.replicas == ("http://replica-1",)
    assert (planned.views, planned.image_size) == (1, 512)  # InstantMesh's one view, at the tier's size
    assert planned.routing == "on the instantmesh replicas, as the tier prefers"


def test_a_preferred_backend_no_replica_runs_leaves_every_replica_and_says_so() -> None:
    planned = plan_for(HIGH, HULL, HULL)
    assert planned.replicas is None and planned.views == 8
    assert planned.routing == "no replica runs the tier's instantmesh"


def test_a_preferred_backend_every_replica_runs_needs_no_choice() -> None:
    planned = plan_for(HIGH, INSTANTMESH, INSTANTMESH)
    assert planned.replicas is None and planned.routing is None and planned.views == 1


def test_a_preferred_backend_on_a_replica_that_does_not_answer_is_not_chosen() -> None:
    down_instantmesh = {**INSTANTMESH, "status": "unreachable"}
    planned = plan_for(HIGH, HULL, down_instantmesh)
    assert planned.replicas is None and planned.views == 8


def test_a_tier_without_a_preference_uses_any_replica() -> None:
    planned = plan_for(STANDARD, HULL, INSTANTMESH)
    assert planned.replicas is None and planned.routing is None and planned.views == 8
