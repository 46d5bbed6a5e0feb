"""Webhooks: a job's end is POSTed, signed, to its webhook_url, retried with backoff, recorded in the
job, and never changes the job (orchestrator/webhooks.py). The receiver is a real HTTP server on
loopback, allow-listed for these tests; what must be refused is checked without connecting."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from meshforge.errors import InvalidInput
from meshforge.settings import OrchestratorSettings
from orchestrator.webhooks import check_webhook_url, signature
from tests.fleet import Fleet, Stack, start_stack, wait_for_end

pytestmark = pytest.mark.fleet

SECRET = "test-webhook-secret-0123456789"
STACK_DB = 13


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers the statuses queued for its path, then 200."""

    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str, timeout: float = 30, count: int = 1) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [d for d in self.deliveries if d.path == path]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} deliveries to {path} expected, got {len(found)}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
            queued = state.answers.get(self.path) or []
            self.send_response(queued.pop(0) if queued else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


@pytest.fixture(scope="module")
def stack(fleet: Fleet) -> Iterator[Stack]:
    own = start_stack(
        fleet,
        "webhooks",
        STACK_DB,
        MESHFORGE_WEBHOOK_SECRET=SECRET,
        MESHFORGE_WEBHOOK_ALLOW_HTTP="true",
        MESHFORGE_OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",  # the loopback receiver, for these tests only
        MESHFORGE_WEBHOOK_RETRY_SECONDS="0.2",
        MESHFORGE_WEBHOOK_MAX_ATTEMPTS="3",
    )
    own.start_dispatcher()
    yield own
    own.stop()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api, timeout=30) as client:
        yield client


def verified(delivery: Delivery) -> dict:
    """The delivery's payload, after checking its signature as a receiver would."""
    timestamp = delivery.headers["Meshforge-Webhook-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256)
    assert hmac.compare_digest(
        delivery.headers["Meshforge-Webhook-Signature"], f"sha256={expected.hexdigest()}"
    )
    assert abs(time.time() - int(timestamp)) < 120
    return json.loads(delivery.body)


def webhook_of(api: httpx.Client, job_id: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        webhook = api.get(f"/3d/status/{job_id}").json()["webhook"]
        if webhook["state"] == state:
            return webhook
        time.sleep(0.05)
    raise AssertionError(f"webhook of {job_id} stayed {webhook}")


def test_a_finished_job_is_posted_signed_to_its_webhook(api: httpx.Client, receiver: Receiver) -> None:
    job_id = api.post(
        "/3d/generate", json={"prompt": "a red cube", "webhook_url": receiver.url("/done")}
    ).json()["job_id"]
    status = wait_for_end(api, job_id)
    (delivery,) = receiver.to("/done")
    payload = verified(delivery)
    assert payload["event"] == "job.completed"
    assert payload["job"]["job_id"] == job_id
    assert payload["job"]["download_url"] == status["download_url"]
    assert payload["delivery_id"] == delivery.headers["Meshforge-Webhook-Id"]
    webhook = webhook_of(api, job_id, "delivered")
    assert webhook["attempts"] == 1 and webhook["last_status_code"] == 200
    assert webhook["delivery_id"] == payload["delivery_id"]


def test_a_failing_receiver_is_retried_with_the_same_delivery_id(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.answers["/flaky"] = [500, 503]
    job_id = api.post(
        "/3d/generate", json={"prompt": "a red cube", "webhook_url": receiver.url("/flaky")}
    ).json()["job_id"]
    deliveries = receiver.to("/flaky", count=3)
    assert len({d.headers["Meshforge-Webhook-Id"] for d in deliveries}) == 1
    assert all(verified(d)["job"]["job_id"] == job_id for d in deliveries)
    webhook = webhook_of(api, job_id, "delivered")
    assert webhook["attempts"] == 3 and webhook["last_status_code"] == 200


def test_a_receiver_that_never_accepts_fails_the_webhook_not_the_job(
    api: httpx.Client, receiver: Receiver
) -> None:
    receiver.answers["/down"] = [500] * 10
    job_id = api.post(
        "/3d/generate", json={"prompt": "a red cube", "webhook_url": receiver.url("/down")}
    ).json()["job_id"]
    webhook = webhook_of(api, job_id, "failed")
    assert webhook["attempts"] == 3
    assert webhook["last_status_code"] == 500
    assert webhook["last_error"] == "the receiver answered 500"
    assert api.get(f"/3d/status/{job_id}").json()["state"] == "completed"


def test_a_cancelled_and_a_failed_job_are_posted_too(api: httpx.Client, receiver: Receiver) -> None:
    cancelled = api.post(
        "/3d/generate",
        json={"prompt": "a red cube", "quality_tier": "high", "webhook_url": receiver.url("/cancel")},
    ).json()["job_id"]
    api.post(f"/3d/cancel/{cancelled}")
    failed = api.post(
        "/3d/generate", json={"prompt": "a wooden chair", "webhook_url": receiver.url("/fail")}
    ).json()["job_id"]
    assert verified(receiver.to("/cancel")[0])["event"] == "job.cancelled"
    payload = verified(receiver.to("/fail")[0])
    assert payload["event"] == "job.failed"
    assert payload["job"]["job_id"] == failed
    assert payload["job"]["message"]


def test_a_job_without_a_webhook_shows_none(api: httpx.Client) -> None:
    job_id = api.post("/3d/generate", json={"prompt": "a red cube"}).json()["job_id"]
    assert api.get(f"/3d/status/{job_id}").json()["webhook"] is None


def test_a_server_without_a_secret_refuses_webhook_urls(fleet: Fleet) -> None:
    with httpx.Client(base_url=fleet.api, timeout=30) as client:
        answer = client.post(
            "/3d/generate", json={"prompt": "a red cube", "webhook_url": "https://example.com/h"}
        )
    assert answer.status_code == 422
    assert "MESHFORGE_WEBHOOK_SECRET" in answer.json()["detail"]


# What must be refused is refused before any connection: checked here without the network.

SETTINGS = OrchestratorSettings(webhook_secret=SECRET)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/hook", "must be https"),
        ("https://127.0.0.1/hook", "only public internet addresses"),
        ("https://localhost/hook", "only public internet addresses"),
        ("https://169.254.169.254/latest", "only public internet addresses"),
        ("https://10.0.0.7/hook", "only public internet addresses"),
        ("https://[::1]/hook", "only public internet addresses"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("ftp://example.com/hook", "only http and https"),
    ],
)
def test_webhook_urls_that_could_reach_inside_are_refused(url: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_webhook_url(url, SETTINGS)
    assert why in refused.value.message


def test_a_public_https_webhook_url_is_accepted() -> None:
    check_webhook_url("https://hooks.example.com/meshforge?token=abc", SETTINGS)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"job.completed"}'
    expected = hmac.new(b"k", b"1733234400." + body, hashlib.sha256).hexdigest()
    assert signature("k", 1733234400, body) == f"sha256={expected}"
