"""Metrics and logs on a real fleet: jobs through the public API move the counters of every process.

A fleet of its own (one replica per stage) runs with the fleet token set, the dispatcher's metrics server
on a free port and MESHFORGE_LOG_FORMAT=json. Two jobs complete and one is cancelled; then the test
scrapes the orchestrator's /metrics, the dispatcher's metrics port and each stage service's /metrics
(with the token; without it they answer 401), checks what moved, that every metric the Grafana dashboard
charts is exported by some process, and that the dispatcher's JSON log lines name their job.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from meshforge.internal_token import INTERNAL_TOKEN_HEADER
from tests.fleet import Fleet, free_port, start_fleet, wait_for_end, wait_until
from tests.unit.test_monitoring import dashboard_metric_names

pytestmark = pytest.mark.fleet

TOKEN = secrets.token_hex(32)
STAGE_URLS = {
    "image-service": "MESHFORGE_IMAGE_SERVICE_URLS",
    "flux-service": "MESHFORGE_FLUX_SERVICE_URLS",
    "reconstruction-service": "MESHFORGE_RECONSTRUCTION_SERVICE_URLS",
    "postprocess-service": "MESHFORGE_POSTPROCESS_SERVICE_URLS",
}
STAGE_ROUTES = {
    "image-service": "/imagine/generate",
    "reconstruction-service": "/reconstruct/mesh",
    "postprocess-service": "/postprocess/clean",
}
STAGES = ("generating_images", "reconstructing_3d", "post_processing")
UNKNOWN_JOB = "0" * 32


class Scrape:
    """One /metrics answer, parsed."""

    def __init__(self, text: str) -> None:
        self.samples: list[Sample] = []
        self.names: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.names.add(family.name)
            self.names.update(s.name for s in family.samples)
            self.samples.extend(family.samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        found = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        return float(sum(found))


def scrape(url: str) -> Scrape:
    assert httpx.get(url, timeout=10).status_code == 401  # the fleet's token is needed
    answer = httpx.get(url, headers={INTERNAL_TOKEN_HEADER: TOKEN}, timeout=10)
    assert answer.status_code == 200, answer.text
    return Scrape(answer.text)


@pytest.fixture(scope="module")
def metrics_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    port = free_port()
    running = start_fleet(
        tmp_path_factory.mktemp("metrics-fleet"),
        flux_replicas=1,
        reconstruction_replicas=1,
        extra_env={
            "MESHFORGE_INTERNAL_TOKEN": TOKEN,
            "MESHFORGE_DISPATCHER_METRICS_PORT": str(port),
            "MESHFORGE_LOG_FORMAT": "json",
        },
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: httpx.get(url, timeout=2).status_code == 401, 30, "the dispatcher's metrics")
        yield running
    finally:
        running.stop()


def dispatcher_url(fleet: Fleet) -> str:
    return f"http://127.0.0.1:{fleet.env['MESHFORGE_DISPATCHER_METRICS_PORT']}/metrics"


def test_jobs_move_the_metrics_of_every_process(metrics_fleet: Fleet) -> None:
    fleet = metrics_fleet
    before = scrape(f"{fleet.api}/metrics")
    with httpx.Client(base_url=fleet.api, timeout=30) as api:
        jobs = []
        for prompt in ("a red cube", "a tall blue cylinder"):
            created = api.post("/3d/generate", json={"prompt": prompt, "output_format": "glb"})
            assert created.status_code == 200, created.text
            jobs.append(created.json()["job_id"])
        for job_id in jobs:
            assert wait_for_end(api, job_id)["state"] == "completed"
        doomed = api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"]
        cancelled = api.post(f"/3d/cancel/{doomed}").status_code == 200  # 409 if it was quicker
        wait_for_end(api, doomed)
        bad = api.post("/3d/generate", json={"prompt": "a red cube", "output_format": "ply"})
        assert bad.status_code == 422
        assert api.get(f"/3d/status/{UNKNOWN_JOB}").status_code == 404

    orchestrator = scrape(f"{fleet.api}/metrics")
    submitted = "meshforge_jobs_submitted_total"
    assert orchestrator.value(submitted, kind="prompt") - before.value(submitted, kind="prompt") == 3
    finished = "meshforge_jobs_finished_total"
    assert orchestrator.value(finished, state="cancelled", reason="cancelled") == (1 if cancelled else 0)
    requests = "meshforge_http_requests_total"
    assert orchestrator.value(requests, route="/3d/generate", status="422") == 1
    assert orchestrator.value(requests, route="/3d/status/{job_id}", status="404") == 1
    assert orchestrator.value(requests, route="/3d/generate", status="200") == 3
    assert not any(UNKNOWN_JOB in s.labels.get("route", "") for s in orchestrator.samples)
    assert orchestrator.value("meshforge_queue_depth") == 0
    assert orchestrator.value("meshforge_jobs_in_flight") == 0
    assert orchestrator.value("meshforge_redis_up") == 1

    # A job cancelled mid-stage leaves its slot once the runner notices (within 0.25 s).
    wait_until(
        lambda: scrape(dispatcher_url(fleet)).value("meshforge_dispatcher_jobs_running") == 0,
        10,
        "the dispatcher's slots to empty",
    )
    dispatcher = scrape(dispatcher_url(fleet))
    assert dispatcher.value(finished, state="completed", reason="none") == 3 - int(cancelled)
    assert dispatcher.value("meshforge_job_duration_seconds_count", state="completed") == 3 - int(cancelled)
    assert dispatcher.value("meshforge_job_queue_wait_seconds_count") >= 2
    for stage in STAGES:
        assert dispatcher.value("meshforge_stage_duration_seconds_count", stage=stage) >= 2, stage
    assert dispatcher.value("meshforge_dispatcher_claims_total", outcome="run") >= 2
    assert dispatcher.value("meshforge_dispatcher_jobs_running") == 0
    assert dispatcher.value("meshforge_dispatcher_slots") == 4

    scraped = [orchestrator, dispatcher]
    for service, variable in STAGE_URLS.items():
        stage = scrape(f"{fleet.env[variable]}/metrics")
        scraped.append(stage)
        assert stage.value("meshforge_backend_loaded", service=service) == 1, service
        assert stage.value("meshforge_replica_busy", service=service) == 0, service
        work = stage.value("meshforge_work_duration_seconds_count", service=service, outcome="ok")
        assert work >= 2 if service in STAGE_ROUTES else work >= 1, service
        assert stage.value("meshforge_work_busy_seconds_total", service=service) > 0, service
        route = {"route": STAGE_ROUTES[service]} if service in STAGE_ROUTES else {}
        assert stage.value(requests, service=service, status="200", **route) >= 2, service

    exported = set().union(*(s.names for s in scraped))
    assert dashboard_metric_names() - exported == set()


def test_the_json_log_lines_name_their_job(metrics_fleet: Fleet) -> None:
    with httpx.Client(base_url=metrics_fleet.api, timeout=30) as api:
        job_id = api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"]
        assert wait_for_end(api, job_id)["state"] == "completed"
    logs = Path(metrics_fleet.data_dir / "logs")
    dispatcher = [json.loads(line) for line in (logs / "dispatcher.log").read_text().splitlines()]
    about = [line for line in dispatcher if line.get("job_id") == job_id]
    assert {"time", "level", "service", "logger", "message"} <= set(about[0])
    assert any(line["message"] == f"job {job_id}: started" for line in about)
    stage_lines = [json.loads(line) for line in (logs / "reconstruction-0.log").read_text().splitlines()]
    work = [line for line in stage_lines if line.get("job_id") == job_id]
    assert [line["message"].split(" job=")[0] for line in work][:1] == ["work started"]
    assert all(line["service"] == "reconstruction-service" for line in work)
