"""What the sync and the async client share: where they connect, how they retry, the request paths."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from meshforge.client.bodies import JobOptions
from meshforge.client.config import DEFAULT_TIMEOUT, Connection
from meshforge.client.files import target_path
from meshforge.client.retry import RetryPolicy
from meshforge.schemas import JobState, Origin, OutputFormat, QualityTier


def job_path(endpoint: str, job_id: str) -> str:
    # Quoted whole: an id is one path segment, whatever a caller passes.
    return f"/3d/{endpoint}/{quote(job_id, safe='')}"


def download_path(job_id: str, format: OutputFormat | str | None) -> str:
    path = job_path("download", job_id)
    return f"{path}?format={quote(OutputFormat(format).value)}" if format is not None else path


def idempotency_headers(key: str | None) -> dict[str, str]:
    """One key per submit, reused by each of its retries: that is what makes a retry safe."""
    return {"Idempotency-Key": key or str(uuid.uuid4())}


def job_options(
    output_format: OutputFormat | str,
    quality_tier: QualityTier | str,
    seed: int | None,
    target_faces: int | None,
    origin: Origin | str,
    height_m: float | None,
    webhook_url: str | None,
) -> dict[str, Any]:
    return JobOptions(output_format, quality_tier, seed, target_faces, origin, height_m, webhook_url).body()


def jobs_params(offset: int, limit: int, state: JobState | str | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {"offset": offset, "limit": limit}
    if state is not None:
        params["state"] = str(state)
    return params


def fallback_name(job_id: str, response: httpx.Response, preview: bool) -> str:
    if preview:
        return f"{job_id}.png"
    suffixes = {
        "model/gltf-binary": ".glb",
        "application/zip": ".obj.zip",
        "model/stl": ".stl",
        "model/vnd.usdz+zip": ".usdz",
    }
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    return job_id + suffixes.get(media_type, ".bin")


class ClientSettings:
    """The arguments both clients take: ``base_url`` (else ``MESHFORGE_API``, else localhost:38100),
    ``api_key`` (else ``MESHFORGE_API_KEY``), the per-request ``timeout`` in seconds, and the ``retry``
    policy for lost answers and busy servers."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.connection = Connection.resolve(base_url, api_key)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    @property
    def base_url(self) -> str:
        return self.connection.base_url

    def http_options(self) -> dict[str, Any]:
        return {
            "base_url": self.connection.base_url,
            "headers": self.connection.headers(),
            "timeout": httpx.Timeout(self.timeout),
        }

    def wait_timeout(self, wait: float | None) -> httpx.Timeout:
        """A status?wait= call answers up to ``wait`` seconds late on purpose."""
        return httpx.Timeout(self.timeout, read=self.timeout + (wait or 0.0))

    @staticmethod
    def download_target(path: str | Path, job_id: str, response: httpx.Response, preview: bool) -> Path:
        name = fallback_name(job_id, response, preview)
        return target_path(path, response.headers.get("content-disposition"), name)
