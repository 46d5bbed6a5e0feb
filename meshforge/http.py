"""The internal HTTP client: calls a stage over its replicas, spreading work and skipping busy ones.

A stage is a list of base URLs. A call goes to the next replica in turn; a replica that answers
`busy` (503 with the code ``busy``: working on another job) or gives no answer at all (any httpx
transport error: refused, reset, timed out, a broken response) is skipped for this round, and when
every replica was busy or down the call waits until another call of this process ends (or a little,
at most) and goes round again until the stage deadline.
Any other error answer, a 503 with another code included, is the stage's own error: it is turned back
into the typed error the service raised, so its message reaches the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from meshforge.errors import ERRORS_BY_CODE, BackendError, MeshforgeError, ServiceBusy, StageUnavailable
from meshforge.internal_token import internal_headers
from meshforge.progress import ProgressAnswer

T = TypeVar("T", bound=BaseModel)
JSON = {"Content-Type": "application/json"}
log = logging.getLogger(__name__)


def error_from_response(response: httpx.Response, stage: str) -> MeshforgeError:
    """Rebuild the typed error a meshforge service answered with."""
    try:
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not a meshforge error body")
        message = str(body.get("detail") or response.reason_phrase)
        code = str(body.get("code") or "")
    except ValueError:
        message, code = response.text[:500] or response.reason_phrase, ""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None or cls is MeshforgeError:
        return BackendError(f"{stage} failed ({response.status_code}): {message}")
    if cls is ServiceBusy:
        return ServiceBusy(message, retry_after=float(response.headers.get("Retry-After", "1")))
    return cls(message)


class ReplicaPool:
    """The replicas of one stage service."""

    def __init__(
        self,
        stage: str,
        urls: list[str],
        client: httpx.AsyncClient,
        *,
        deadline_seconds: float = 900.0,
        retry_seconds: float = 0.25,
    ) -> None:
        if not urls:
            raise ValueError(f"no replica URLs configured for {stage}")
        self.stage = stage
        self.urls = [url.rstrip("/") for url in urls]
        self._client = client
        self._turn = itertools.cycle(range(len(self.urls)))
        self._deadline_seconds = deadline_seconds
        self._retry_seconds = retry_seconds
        self._freed = asyncio.Event()

    def _round(self, only: frozenset[str] | None = None) -> list[str]:
        start = next(self._turn)
        turn = self.urls[start:] + self.urls[:start]
        return [url for url in turn if only is None or url in only]

    async def post(
        self,
        path: str,
        body: BaseModel,
        response_model: type[T],
        *,
        only: Sequence[str] | None = None,
        on_attempt: Callable[[str], None] | None = None,
    ) -> tuple[T, str]:
        """POST to a free replica; returns the parsed answer and the replica that gave it.

        ``only`` restricts the call to some of the replicas (those running a backend a quality tier
        prefers) for as long as one of them answers at all: once a whole round finds every one of them
        unreachable, the call goes to any replica rather than wait out the deadline on dead ones.
        ``on_attempt(replica)`` is told each replica the call is sent to, just before it is: the last one
        told holds the call (where its progress can be asked, ``work_progress``)."""
        deadline = time.monotonic() + self._deadline_seconds
        payload = body.model_dump_json().encode()
        chosen = frozenset(url.rstrip("/") for url in only) & frozenset(self.urls) if only else None
        try:
            return await self._post(path, payload, response_model, deadline, chosen or None, on_attempt)
        finally:
            self._freed.set()  # a replica this process used is free again: wake the calls waiting
            self._freed = asyncio.Event()

    async def _post(
        self,
        path: str,
        payload: bytes,
        response_model: type[T],
        deadline: float,
        only: frozenset[str] | None,
        on_attempt: Callable[[str], None] | None = None,
    ) -> tuple[T, str]:
        while True:
            busy: list[str] = []
            down: list[str] = []
            for base in self._round(only):
                if on_attempt is not None:
                    on_attempt(base)
                try:
                    response = await self._client.post(base + path, content=payload, headers=JSON)
                except httpx.TransportError as exc:
                    # Refused, reset, timed out (connect, write, read, pool), or a broken answer: the
                    # replica gave none. Trying again (another replica, or this one later) is safe:
                    # every stage call is idempotent, keyed by job id and writing to a path of its own.
                    log.warning("%s replica %s gave no answer: %r", self.stage, base, exc)
                    down.append(base)
                    continue
                if response.is_error:
                    error = error_from_response(response, self.stage)
                    if isinstance(error, ServiceBusy):  # only the stage's own `busy` code means busy
                        busy.append(base)
                        continue
                    raise error
                return _parse(response, response_model, self.stage), base
            if time.monotonic() >= deadline:
                # The replicas' addresses are for the log; the job's message only names the stage.
                log.warning(
                    "%s: giving up; busy: %s; unreachable: %s",
                    self.stage,
                    ", ".join(busy) or "none",
                    ", ".join(down) or "none",
                )
                raise StageUnavailable(
                    f"no {self.stage} replica could take the job within {self._deadline_seconds:.0f} s "
                    f"({len(busy)} busy, {len(down)} unreachable or not answering)"
                )
            if only is not None and not busy:
                log.warning("%s: every preferred replica is unreachable; trying them all", self.stage)
                only = None
                continue
            # Every replica busy: try again once a call of this process frees one, or after the pause
            # (a replica may be busy with another dispatcher's work, which no call here announces).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), self._retry_seconds)

    async def health(self) -> dict[str, dict[str, Any]]:
        """Each replica's /health answer, or the reason it gave none."""
        results: dict[str, dict[str, Any]] = {}
        for base in self.urls:
            try:
                response = await self._client.get(base + "/health", timeout=2.0)
                results[base] = (
                    response.json() if response.is_success else {"status": f"http {response.status_code}"}
                )
            except (httpx.HTTPError, ValueError) as exc:
                results[base] = {"status": "unreachable", "error": str(exc) or type(exc).__name__}
        return results

    async def cancel(self, job_id: str, timeout: float = 2.0) -> int:
        """Ask every replica at once to abandon ``job_id``'s work (``POST /work/{job_id}/cancel``);
        returns how many pieces of work were stopped. Never raises: a replica that cannot be told is
        logged, and its work still stops at its next safe point once its caller has hung up."""

        async def tell(base: str) -> int:
            try:
                response = await self._client.post(f"{base}/work/{job_id}/cancel", timeout=timeout)
                if response.is_success:
                    return int(response.json().get("cancelled", 0))
                log.warning("%s replica %s refused to cancel job %s: %s", self.stage, base, job_id,
                            error_from_response(response, self.stage).message)  # fmt: skip
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("%s replica %s not told to cancel job %s: %r", self.stage, base, job_id, exc)
            return 0

        return sum(await asyncio.gather(*(tell(base) for base in self.urls)))

    async def work_progress(self, base: str, job_id: str, timeout: float = 1.0) -> ProgressAnswer | None:
        """How far ``job_id``'s work on replica ``base`` has got (``GET /work/{job_id}/progress``); None
        when it gave no usable answer (a replica without the route, slow, down). Progress is a nicety:
        this never raises, and logs at debug only."""
        try:
            response = await self._client.get(f"{base}/work/{job_id}/progress", timeout=timeout)
            if response.is_success:
                return ProgressAnswer.model_validate_json(response.content)
            status = response.status_code
            log.debug("%s replica %s: no progress of job %s (%d)", self.stage, base, job_id, status)
        except (httpx.HTTPError, ValidationError) as exc:
            log.debug("%s replica %s: no progress of job %s: %r", self.stage, base, job_id, exc)
        return None


def _parse(response: httpx.Response, model: type[T], stage: str) -> T:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise BackendError(f"{stage} gave an answer meshforge cannot read: {exc.errors()[0]['msg']}") from exc


def make_client(request_timeout: float, internal_token: str = "") -> httpx.AsyncClient:
    """One pooled client per process; a short connect timeout tells a dead replica from a slow one.

    ``internal_token`` (MESHFORGE_INTERNAL_TOKEN) goes with every call: the stage services refuse
    callers without it when one is configured (meshforge.internal_token)."""
    timeout = httpx.Timeout(request_timeout, connect=2.0)
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=64),
        headers=internal_headers(internal_token),
    )
