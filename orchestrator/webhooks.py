"""Webhooks: when a job with a ``webhook_url`` ends, its status record is POSTed there, signed.

The script that ends a job (any of them: finish, fail, cancel, a claim that gives up) puts its id in
the sorted set ``3d:webhooks:due`` in the same step (``mf_reindex``, orchestrator/indexes.py), so no
end is ever missed. Each dispatcher runs a ``WebhookDeliverer``: it takes due deliveries with a
lease (a dispatcher that dies mid-delivery leaves it due again), POSTs through the same
server-side-request-forgery protections as image URLs (meshforge/outbound.py, no redirects followed),
and records the outcome in the job (attempts, last status code or error); a failure is tried again
after ``webhook_retry_seconds``, doubling, ``webhook_max_attempts`` times in all. Delivery never
touches the job's state: a receiver that is down cannot fail or slow a job.

Each attempt carries the same ``Meshforge-Webhook-Id`` (receivers drop repeats: delivery is at least
once), a ``Meshforge-Webhook-Timestamp`` (Unix seconds) and ``Meshforge-Webhook-Signature:
sha256=<hex>``, the HMAC-SHA256 with ``MESHFORGE_WEBHOOK_SECRET`` of ``"<timestamp>." + body``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from meshforge import redis_keys as keys
from meshforge.errors import InvalidInput
from meshforge.outbound import OutboundClient, OutboundFailed, OutboundRefused, precheck_url
from meshforge.schemas import WebhookState
from meshforge.settings import DispatcherSettings, OrchestratorSettings
from orchestrator.records import to_status

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
BATCH = 16
LONGEST_WAIT_SECONDS = 3600.0
LEASE_MARGIN_SECONDS = 30.0
USER_AGENT = "meshforge-webhooks/1"

# KEYS: due set. ARGV: now, lease (s), batch. Take the due deliveries: each is re-scored to the lease's
# end, so it comes due again if this dispatcher dies before recording an outcome.
_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, job_id in ipairs(due) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), job_id) end
return due
"""

# KEYS: job, due set. ARGV: job id, fields (JSON), the next attempt's time ('' for none). Record an
# attempt's outcome, unless the job is gone (retention deleted it meanwhile: nothing to resurrect).
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) return 0 end
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], k, v) end
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[1])
else redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1]) end
return 1
"""


def check_webhook_url(url: str, settings: OrchestratorSettings) -> None:
    """Refuse, at submit, a webhook this server would never deliver: webhooks off, not https (unless
    allowed), or a target that needs no lookup to know it is refused (loopback, private literals)."""
    if not settings.webhook_secret:
        raise InvalidInput(
            "webhook_url: this server sends no webhooks (its operator has not set "
            "MESHFORGE_WEBHOOK_SECRET); follow the job with GET /3d/events/{job_id} instead"
        )
    target = precheck_url(url, settings.outbound_allowed_networks)
    if target.url.scheme != "https" and not settings.webhook_allow_http:
        raise OutboundRefused(target.shown, "webhook URLs must be https")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Meshforge-Webhook-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookDeliverer:
    def __init__(self, redis: Redis, settings: DispatcherSettings, client: OutboundClient) -> None:
        self.redis = redis
        self.settings = settings
        self.client = client
        self._take_due = redis.register_script(_TAKE_DUE)
        self._record = redis.register_script(_RECORD)
        self._lease = settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS

    async def run(self) -> None:
        """Deliver what is due, forever (cancelled when the dispatcher stops)."""
        while True:
            due: list[str] = []
            try:
                due = await self.take_due()
                await asyncio.gather(*(self.deliver(job_id) for job_id in due))
            except (RedisError, OSError) as exc:
                log.error("webhooks: could not reach Redis (%s)", exc)
            if len(due) < BATCH:  # a full batch: more may be due at once
                await asyncio.sleep(POLL_SECONDS)

    async def take_due(self) -> list[str]:
        found = await self._take_due(keys=[keys.WEBHOOKS_DUE], args=[time.time(), self._lease, BATCH])
        return cast("list[str]", found)

    async def deliver(self, job_id: str) -> None:
        """One attempt at one job's webhook, its outcome recorded in the job."""
        record = cast("dict[str, str]", await self.redis.hgetall(keys.job(job_id)))
        url = record.get("webhook_url")
        if not url or record.get("webhook_state") != WebhookState.pending.value:
            await self._record(keys=[keys.job(job_id), keys.WEBHOOKS_DUE], args=[job_id, "{}", ""])
            return
        delivery_id = record.get("webhook_delivery_id") or uuid.uuid4().hex
        attempts = int(record.get("webhook_attempts") or 0) + 1
        status_code, error = await self._post(url, delivery_id, self._payload(record, delivery_id))
        fields: dict[str, Any] = {
            "webhook_delivery_id": delivery_id,
            "webhook_attempts": attempts,
            "webhook_last_status": "" if status_code is None else status_code,
            "webhook_last_error": error or "",
        }
        next_at: float | str = ""
        if error is None:
            fields |= {"webhook_state": WebhookState.delivered.value, "webhook_delivered_at": time.time()}
            log.info("job %s: webhook delivered (attempt %d)", job_id, attempts)
        elif attempts >= self.settings.webhook_max_attempts:
            fields["webhook_state"] = WebhookState.failed.value
            log.warning("job %s: webhook failed after %d attempts: %s", job_id, attempts, error)
        else:
            wait = min(LONGEST_WAIT_SECONDS, self.settings.webhook_retry_seconds * 2 ** (attempts - 1))
            next_at = time.time() + wait
            fields["webhook_next_at"] = next_at
            log.info("job %s: webhook attempt %d failed (%s); next in %.0f s", job_id, attempts, error, wait)
        encoded = json.dumps({k: str(v) for k, v in fields.items()})
        await self._record(keys=[keys.job(job_id), keys.WEBHOOKS_DUE], args=[job_id, encoded, next_at])

    def _payload(self, record: dict[str, str], delivery_id: str) -> bytes:
        status = to_status(record)
        body = {
            "event": f"job.{status.state.value}",
            "delivery_id": delivery_id,
            "job": status.model_dump(mode="json", exclude={"webhook"}),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    async def _post(self, url: str, delivery_id: str, body: bytes) -> tuple[int | None, str | None]:
        """(status code, None) on a 2xx; else what went wrong, for the job's record."""
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Meshforge-Webhook-Id": delivery_id,
            "Meshforge-Webhook-Timestamp": str(timestamp),
            "Meshforge-Webhook-Signature": signature(self.settings.webhook_secret, timestamp, body),
        }
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                async with self.client.stream(
                    url, method="POST", headers=headers, content=body, max_redirects=0
                ) as answer:
                    code = answer.status_code
        except (OutboundRefused, OutboundFailed) as exc:
            return None, exc.why
        except TimeoutError:
            return None, f"no answer within {self.settings.webhook_timeout_seconds:g} s"
        if 200 <= code < 300:
            return code, None
        return code, f"the receiver answered {code}"
