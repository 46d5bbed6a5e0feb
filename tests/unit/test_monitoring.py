"""Metrics in process: HTTP answers by route template, /metrics behind the fleet token, the dispatcher's
metrics server, stage work; and the committed Prometheus and Grafana files against the metrics defined
(the live fleet: tests/test_metrics.py)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from meshforge.errors import JobCancelled, NotFound
from meshforge.internal_token import INTERNAL_TOKEN_HEADER, require_internal_token
from meshforge.metrics import backend_loaded, observe_work, start_metrics_server
from meshforge.service import service_app
from meshforge.settings import PROCESS_SETTINGS, field_default
from orchestrator.metrics import api_metrics, dispatcher_metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "meshforge-dashboard.json"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
TOKEN = "fedcba9876543210" * 4


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def things_app(service: str) -> FastAPI:
    app = service_app(service)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "missing":
            raise NotFound("no such thing")
        if thing_id == "broken":
            raise RuntimeError("a bug")
        return {"thing": thing_id}

    return app


def test_answers_are_counted_by_route_template_never_by_raw_path() -> None:
    service = "unit-http"
    with TestClient(things_app(service), raise_server_exceptions=False) as client:
        assert client.get("/things/a").status_code == 200
        assert client.get("/things/missing").status_code == 404
        assert client.get("/things/broken").status_code == 500
        assert client.get("/no/such/path/12345").status_code == 404
        assert client.request("BREW", "/things/a").status_code == 405
    route = {"service": service, "route": "/things/{thing_id}"}
    assert sample("meshforge_http_requests_total", **route, method="GET", status="200") == 1
    assert sample("meshforge_http_requests_total", **route, method="GET", status="404") == 1
    assert sample("meshforge_http_requests_total", **route, method="GET", status="500") == 1
    assert sample("meshforge_http_requests_total", **route, method="other", status="405") == 1
    unmatched = {"service": service, "route": "unmatched", "method": "GET", "status": "404"}
    assert sample("meshforge_http_requests_total", **unmatched) == 1
    assert sample("meshforge_http_request_duration_seconds_count", **route, method="GET") == 3
    paths = {labels.get("route") for labels in _labels_of("meshforge_http_requests_total", service)}
    assert paths == {"/things/{thing_id}", "unmatched"}


def _labels_of(name: str, service: str) -> list[dict[str, str]]:
    return [
        s.labels
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and s.labels.get("service") == service
    ]


def test_metrics_of_a_stage_service_need_the_token_when_one_is_set() -> None:
    app = things_app("unit-guarded")
    require_internal_token(app, "unit-guarded", TOKEN)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        answer = client.get("/metrics", headers={INTERNAL_TOKEN_HEADER: TOKEN})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        assert "meshforge_http_requests_total" in answer.text
        assert "/metrics" not in client.get("/openapi.json", headers={INTERNAL_TOKEN_HEADER: TOKEN}).text


def test_the_orchestrator_closes_only_its_metrics() -> None:
    app = things_app("unit-public")
    require_internal_token(app, "unit-public", TOKEN, only=frozenset({"/metrics"}))
    with TestClient(app) as client:
        assert client.get("/things/a").status_code == 200  # the public API stays public
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        assert client.get("/metrics", headers={INTERNAL_TOKEN_HEADER: TOKEN}).status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_dispatchers_metrics_server_needs_the_token_and_a_taken_port_is_no_crash() -> None:
    port = _free_port()
    server = start_metrics_server("127.0.0.1", port, TOKEN)
    assert server is not None
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url).status_code == 401
        answer = httpx.get(url, headers={INTERNAL_TOKEN_HEADER: TOKEN})
        assert answer.status_code == 200 and "process_cpu_seconds_total" in answer.text
        assert start_metrics_server("127.0.0.1", port, TOKEN) is None  # taken: logged, no exception
    finally:
        server.shutdown()
        server.server_close()
    assert start_metrics_server("127.0.0.1", 0, TOKEN) is None  # port 0: no server


def test_stage_work_moves_the_busy_gauges_and_counts_its_outcome() -> None:
    service = "unit-stage"
    backend_loaded(service, "procedural")
    assert sample("meshforge_backend_loaded", service=service, backend="procedural") == 1
    assert sample("meshforge_replica_busy", service=service) == 0
    with observe_work(service):
        assert sample("meshforge_replica_busy", service=service) == 1
        assert sample("meshforge_work_running", service=service) == 1
    with pytest.raises(JobCancelled), observe_work(service):
        raise JobCancelled("the job was cancelled")
    assert sample("meshforge_replica_busy", service=service) == 0
    assert sample("meshforge_work_duration_seconds_count", service=service, outcome="ok") == 1
    assert sample("meshforge_work_duration_seconds_count", service=service, outcome="cancelled") == 1
    assert sample("meshforge_work_busy_seconds_total", service=service) > 0


def defined_names() -> set[str]:
    """Every series name the processes' registries can export (each process's set made here at once)."""
    api_metrics()
    dispatcher_metrics()
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard queries nothing"
    return {name for expr in exprs for name in re.findall(r"\bmeshforge_[a-z0-9_]+", expr)}


def test_every_metric_the_dashboard_charts_is_defined() -> None:
    wanted = dashboard_metric_names()
    assert {"meshforge_queue_depth", "meshforge_http_requests_total", "meshforge_replica_busy"} <= wanted
    assert wanted - defined_names() == set()


def test_prometheus_scrapes_every_process_at_its_default_port_with_the_token() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(PROCESS_SETTINGS)
    ports = {
        "orchestrator": field_default("orchestrator_port"),
        "dispatcher": field_default("dispatcher_metrics_port"),
        **{
            name: field_default(f"{name.removesuffix('-service')}_service_port")
            for name in PROCESS_SETTINGS
            if name.endswith("-service")
        },
    }
    for name, job in jobs.items():
        assert {sd["port"] for sd in job["dns_sd_configs"]} == {ports[name]}, name
        assert job["http_headers"][INTERNAL_TOKEN_HEADER]["files"], name
