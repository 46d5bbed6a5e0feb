"""Idempotent submits: the same ``Idempotency-Key`` with the same request returns the first job.

A client that lost the answer to a submit (a timeout, a dropped connection) sends it again with the
same key and gets the job its first attempt made, never a second job. One Redis string per key and
caller, ``SET NX GET`` in one round trip, holds the request's fingerprint and the job id for
``MESHFORGE_IDEMPOTENCY_SECONDS`` (24 h by default):

- no entry: this request reserves the key for a new job id, then creates that job;
- the same fingerprint: the first job's id is answered again (200, ``Idempotent-Replayed: true``);
- another fingerprint: 409, the key was used for a different request;
- the same fingerprint while the first request is still creating its job: 409 with ``Retry-After``.

A request refused after the reservation (a quota, a full queue) gives the key back, so a retry of it
can succeed later. Keys are scoped per API key: two callers never see each other's jobs through them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from meshforge import redis_keys as keys
from meshforge.errors import Conflict, RetryLater

# A reservation whose job never appeared (its orchestrator died between the two) expires after this.
RESERVATION_SECONDS = 30.0

# KEYS: the entry. ARGV: the value it was reserved with. Gives a reservation back, if still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: the entry. ARGV: the value read, the new value, its lifetime in ms. Takes over a dead reservation.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class IdempotencyKeyReused(Conflict):
    """The key was already used with a different request."""

    code = "idempotency_key_reused"


class IdempotentRequestInProgress(RetryLater):
    """The first request with this key is still creating its job."""

    status_code = 409
    code = "idempotent_request_in_progress"


def fingerprint(kind: str, body: dict[str, Any]) -> str:
    """What makes two submits "the same request": the kind and the validated body, defaults filled in,
    before the server picks a seed for a request without one."""
    canonical = json.dumps({"kind": kind, "body": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    job_id: str
    reserved_at: float

    def encode(self) -> str:
        return f"{self.fingerprint} {self.job_id} {self.reserved_at!r}"

    @classmethod
    def decode(cls, value: str) -> Entry:
        digest, job_id, reserved_at = value.split(" ")
        return cls(digest, job_id, float(reserved_at))


class IdempotencyKeys:
    def __init__(self, redis: Redis, seconds: float) -> None:
        self.redis = redis
        self.seconds = seconds
        self._release = redis.register_script(_RELEASE)
        self._take_over = redis.register_script(_TAKE_OVER)

    async def submit(
        self,
        scope: str,
        key: str,
        digest: str,
        job_id: str,
        create: Callable[[], Awaitable[str]],
    ) -> tuple[str, bool]:
        """The job for this key: ``(job_id, replayed)``. ``create`` makes the job ``job_id`` when the
        key is new; if it raises, the key is given back and the error goes on."""
        name = keys.idempotency(scope, key)
        mine = Entry(digest, job_id, time.time())
        lifetime_ms = int(self.seconds * 1000)
        previous = cast(
            "str | None", await self.redis.set(name, mine.encode(), nx=True, get=True, px=lifetime_ms)
        )
        if previous is not None:
            first = Entry.decode(previous)
            if first.fingerprint != digest:
                raise IdempotencyKeyReused(
                    f'Idempotency-Key "{key}" was already used for a different request in the last '
                    f"{self.seconds / 3600:g} h; send a new key for a new job"
                )
            if await self.redis.exists(keys.job(first.job_id)):
                return first.job_id, True
            # Past the reservation time the first request died before making its job (or the job has
            # been deleted since): this one takes the key over, unless another request just did.
            dead = time.time() - first.reserved_at >= RESERVATION_SECONDS
            if not (dead and await self._take_over(keys=[name], args=[previous, mine.encode(), lifetime_ms])):
                raise IdempotentRequestInProgress(
                    f'the first request with Idempotency-Key "{key}" is still creating its job: '
                    "try again in a second"
                )
        try:
            return await create(), False
        except BaseException:
            await self._release(keys=[name], args=[mine.encode()])
            raise
