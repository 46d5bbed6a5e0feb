"""`make run`'s ready process says what it still waits for, instead of giving up after a fixed time."""

from __future__ import annotations

from tests.scripts import load_script

wait_healthy = load_script("wait_healthy")


def test_it_names_the_replicas_that_are_not_healthy_yet() -> None:
    health = {
        "status": "degraded",
        "detail": {
            "redis": "ok",
            "stages": {
                "flux-service": {"http://127.0.0.1:38120": {"status": "unreachable"}},
                "image-service": {"http://127.0.0.1:38110": {"status": "ok"}},
            },
        },
    }
    assert wait_healthy.waiting_for(health) == "waiting for flux-service http://127.0.0.1:38120 (unreachable)"


def test_with_every_replica_healthy_it_names_what_the_orchestrator_reports() -> None:
    health = {"status": "degraded", "detail": {"redis": "unreachable", "stages": {}}}
    assert wait_healthy.waiting_for(health) == "the orchestrator reports degraded (Redis: unreachable)"
