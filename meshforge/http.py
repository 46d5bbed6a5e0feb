"""The internal HTTP client: calls a stage over its replicas, spreading work and skipping busy ones.

A stage is a list of base URLs. A call goes to the next replica in turn; a replica that answers 503
(busy with another job) or cannot be reached is skipped for this round, and when every replica was
busy or down the call waits a little and goes round again until the stage deadline. Any other error
answer is turned back into the typed error the service raised, so its message reaches the job.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from meshforge.errors import ERRORS_BY_CODE, BackendError, MeshforgeError, ServiceBusy, StageUnavailable

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger(__name__)


def error_from_response(response: httpx.Response, stage: str) -> MeshforgeError:
    """Rebuild the typed error a meshforge service answered with."""
    try:
        body = response.json()
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

    def _round(self) -> list[str]:
        start = next(self._turn)
        return self.urls[start:] + self.urls[:start]

    async def post(
        self,
        path: str,
        body: BaseModel,
        response_model: type[T],
    ) -> tuple[T, str]:
        """POST to a free replica; returns the parsed answer and the replica that gave it."""
        deadline = time.monotonic() + self._deadline_seconds
        payload = body.model_dump(mode="json")
        while True:
            busy: list[str] = []
            down: list[str] = []
            for base in self._round():
                try:
                    response = await self._client.post(base + path, json=payload)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                    log.warning("%s replica %s unreachable: %s", self.stage, base, exc)
                    down.append(base)
                    continue
                if response.status_code == 503:
                    busy.append(base)
                    continue
                if response.is_error:
                    raise error_from_response(response, self.stage)
                return _parse(response, response_model, self.stage), base
            if time.monotonic() >= deadline:
                raise StageUnavailable(
                    f"no {self.stage} replica could take the job within {self._deadline_seconds:.0f} s "
                    f"(busy: {', '.join(busy) or 'none'}; unreachable: {', '.join(down) or 'none'})"
                )
            await asyncio.sleep(self._retry_seconds)

    async def health(self) -> dict[str, dict]:
        """Each replica's /health answer, or the reason it gave none."""
        results: dict[str, dict] = {}
        for base in self.urls:
            try:
                response = await self._client.get(base + "/health", timeout=2.0)
                results[base] = (
                    response.json() if response.is_success else {"status": f"http {response.status_code}"}
                )
            except (httpx.HTTPError, ValueError) as exc:
                results[base] = {"status": "unreachable", "error": str(exc) or type(exc).__name__}
        return results


def _parse(response: httpx.Response, model: type[T], stage: str) -> T:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise BackendError(f"{stage} gave an answer meshforge cannot read: {exc.errors()[0]['msg']}") from exc


def make_client(request_timeout: float) -> httpx.AsyncClient:
    """One pooled client per process; a short connect timeout tells a dead replica from a slow one."""
    timeout = httpx.Timeout(request_timeout, connect=2.0)
    return httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=64))
