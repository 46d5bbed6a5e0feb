"""When the client sends a request again: a dropped connection, a timeout, or a busy server.

Submits carry an ``Idempotency-Key`` (one per submit, the same on every attempt), so a retry of a
submit whose first answer was lost gets the first job back, never a second one.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from meshforge.client.errors import retry_after_of

# The codes of answers worth waiting out: a full queue or a busy stage (503), and the server still
# creating the job of this very Idempotency-Key (409, after an attempt whose answer was lost).
_RETRIED_CONFLICTS = frozenset({"idempotent_request_in_progress"})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (1: never retry); the n-th retry waits ``backoff * 2**(n-1)`` seconds, or the
    server's ``Retry-After`` — each wait at most ``max_delay`` seconds, so a retry loop always ends."""

    attempts: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 1), or None: give up."""
        if attempt >= self.attempts:
            return None
        wait = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
        return min(wait, self.max_delay)

    def delay_after_answer(self, attempt: int, response: httpx.Response) -> float | None:
        """The wait before sending again after this answer, or None where the answer is final."""
        retry_after = retry_after_of(response)
        if response.status_code == 503 and retry_after is not None:
            return self.delay(attempt, retry_after)
        in_progress = response.status_code == 409 and _code_of(response) in _RETRIED_CONFLICTS
        if in_progress and retry_after is not None:
            return self.delay(attempt, retry_after)
        return None


NO_RETRIES = RetryPolicy(attempts=1)

# What counts as a lost answer: the request may or may not have reached the server.
RETRIED_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError,)


def _code_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
