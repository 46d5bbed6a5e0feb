"""Riding out a Redis outage: the dispatcher retries its Redis calls instead of dropping the job.

Only errors that say "Redis could not be reached" are retried (a refused or dropped connection, a
timeout, a server still loading its append-only file). A script or command error is a bug and is
raised at once. The wait doubles from 0.1 s up to 2 s, so a restarted Redis is found again within
about 2 s of coming back, and a long outage costs one attempt every 2 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")
log = logging.getLogger("dispatcher")

REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""What a call raises when Redis is down, restarting or out of reach (BusyLoadingError included)."""

FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 2.0


async def until_redis_answers(call: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``call`` until Redis answers it. Every write the dispatcher makes is a Lua script that can
    safely run twice (a retried claim of one's own job counts no new attempt), so a call whose answer
    was lost with the connection may be sent again."""
    delay = FIRST_DELAY_SECONDS
    started = time.monotonic()
    while True:
        try:
            result = await call()
        except REDIS_UNREACHABLE as exc:
            log.warning(
                "%s: Redis unreachable for %.1f s (%s); retrying in %.1f s",
                what,
                time.monotonic() - started,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_SECONDS)
            continue
        if delay > FIRST_DELAY_SECONDS:
            log.info("%s: Redis answered again after %.1f s", what, time.monotonic() - started)
        return result
