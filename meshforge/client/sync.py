"""``Client``: the meshforge API from ordinary (blocking) Python code.

with Client() as api:
    job = api.generate("a red cube", output_format="glb")
    status = api.wait(job.job_id, timeout=300)
    api.download(job.job_id, "cube.glb")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from meshforge.client.base import (
    ClientSettings,
    download_path,
    idempotency_headers,
    job_options,
    job_path,
    jobs_params,
)
from meshforge.client.bodies import Images, upload_parts
from meshforge.client.errors import ApiUnreachable, error_from_response
from meshforge.client.files import atomic_write
from meshforge.client.following import EventCallback, JobFollower, is_missing_endpoint
from meshforge.client.retry import NO_RETRIES, RETRIED_ERRORS, RetryPolicy
from meshforge.schemas import (
    HealthResponse,
    JobCreated,
    JobList,
    JobState,
    JobStatus,
    Origin,
    OutputFormat,
    QualityTier,
    UploadResponse,
)


class Client(ClientSettings):
    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(base_url, api_key=api_key, timeout=timeout, retry=retry)
        self._http = httpx.Client(**self.http_options())

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- submits -------------------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        output_format: OutputFormat | str = OutputFormat.glb,
        quality_tier: QualityTier | str = QualityTier.standard,
        seed: int | None = None,
        target_faces: int | None = None,
        origin: Origin | str = Origin.bottom,
        height_m: float | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobCreated:
        """Prompt → 3D (POST /3d/generate); answers at once with the job's id."""
        options = job_options(output_format, quality_tier, seed, target_faces, origin, height_m, webhook_url)
        return self._submit("/3d/generate", {"prompt": prompt, **options}, idempotency_key)

    def from_images(
        self,
        images: Sequence[str | Path],
        *,
        output_format: OutputFormat | str = OutputFormat.glb,
        quality_tier: QualityTier | str = QualityTier.standard,
        seed: int | None = None,
        target_faces: int | None = None,
        origin: Origin | str = Origin.bottom,
        height_m: float | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobCreated:
        """Images → 3D (POST /3d/from-image): 1, 4 or 8 views in the canonical order, all local files
        (uploaded first, POST /3d/upload) or all http(s) URLs (fetched by the server)."""
        sorted_images = Images.sort(images)
        if sorted_images.files:
            source: dict[str, Any] = {"image_paths": self.upload(sorted_images.files).image_paths}
        else:
            source = {"image_urls": sorted_images.urls}
        options = job_options(output_format, quality_tier, seed, target_faces, origin, height_m, webhook_url)
        return self._submit("/3d/from-image", {**source, **options}, idempotency_key)

    def upload(self, files: Sequence[str | Path]) -> UploadResponse:
        """Store images on the server (POST /3d/upload); pass the paths it returns as image_paths.
        A retried upload makes no job, only a second copy of the files."""
        parts = upload_parts([Path(file) for file in files])
        response = self._request("POST", "/3d/upload", self.retry, files=parts)
        return UploadResponse.model_validate(response.json())

    def _submit(self, path: str, body: dict[str, Any], idempotency_key: str | None) -> JobCreated:
        headers = idempotency_headers(idempotency_key)
        response = self._request("POST", path, self.retry, json=body, headers=headers)
        return JobCreated.model_validate(response.json())

    # --- jobs ----------------------------------------------------------------------------------------

    def status(self, job_id: str, wait: float | None = None) -> JobStatus:
        """The job's record; with ``wait``, once it ends or after ``wait`` seconds (the server's max: 120)."""
        params = {"wait": wait} if wait else None
        timeout = self.wait_timeout(wait)
        path = job_path("status", job_id)
        response = self._request("GET", path, self.retry, params=params, timeout=timeout)
        return JobStatus.model_validate(response.json())

    def wait(
        self, job_id: str, timeout: float | None = None, on_event: EventCallback | None = None
    ) -> JobStatus:
        """The job's final record (completed, failed or cancelled: check ``.state``), following its live
        events; ``on_event`` gets each one. Raises WaitTimedOut after ``timeout`` seconds."""
        follower = JobFollower(job_id, timeout, on_event, self.retry, self.base_url)
        if self._follow_events(follower):
            return follower.final or self.status(job_id)
        while True:  # an older server: poll
            follower.check_deadline()
            if follower.observe(self.status(job_id, wait=follower.poll_wait())):
                assert follower.final is not None
                return follower.final

    def _follow_events(self, follower: JobFollower) -> bool:
        """Reads the stream to the job's end (True), or finds the server has none (False)."""
        path = job_path("events", follower.job_id)
        while True:
            follower.check_deadline()
            headers, timeout = follower.stream_headers(), follower.stream_timeout(self.timeout)
            try:
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as answer:
                    if answer.status_code == 200:
                        for line in answer.iter_lines():
                            if follower.feed(line):
                                return True
                            follower.check_deadline()
                        delay = follower.reconnect_delay(None)  # it ended before the job did
                    else:
                        answer.read()
                        if is_missing_endpoint(answer):
                            return False
                        delay = follower.refusal_delay(answer)
            except RETRIED_ERRORS as error:
                delay = follower.reconnect_delay(error)
            time.sleep(delay)

    def download(self, job_id: str, path: str | Path, format: OutputFormat | str | None = None) -> Path:
        """The finished asset (GET /3d/download) written to ``path`` (or into it, if it is a folder, under
        the server's name), atomically; returns where it went. ``format``: another of the job's
        ``formats``, converted from the same mesh (the job's own format when None)."""
        return self._save(download_path(job_id, format), job_id, path, preview=False)

    def preview(self, job_id: str, path: str | Path) -> Path:
        """The finished asset's PNG preview (GET /3d/preview), written like download."""
        return self._save(job_path("preview", job_id), job_id, path, preview=True)

    def _save(self, url: str, job_id: str, path: str | Path, preview: bool) -> Path:
        attempt = 1
        while True:
            try:
                with self._http.stream("GET", url) as response:
                    if response.status_code != 200:
                        response.read()
                        raise error_from_response(response)
                    target = self.download_target(path, job_id, response, preview)
                    with atomic_write(target) as file:
                        for chunk in response.iter_bytes(1 << 20):
                            file.write(chunk)
                    return target
            except RETRIED_ERRORS as error:
                delay = self.retry.delay(attempt)
                if delay is None:
                    raise ApiUnreachable(self.base_url, error) from error
            time.sleep(delay)
            attempt += 1

    def jobs(self, offset: int = 0, limit: int = 20, state: JobState | str | None = None) -> JobList:
        """Recent jobs, newest first (GET /3d/jobs)."""
        params = jobs_params(offset, limit, state)
        return JobList.model_validate(self._request("GET", "/3d/jobs", self.retry, params=params).json())

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued or running job (a finished one raises Conflict); not retried: a second
        cancel of the same job would be a 409."""
        response = self._request("POST", job_path("cancel", job_id), NO_RETRIES)
        return JobStatus.model_validate(response.json())

    def health(self) -> HealthResponse:
        return HealthResponse.model_validate(self._request("GET", "/health", self.retry).json())

    def _request(self, method: str, path: str, retry: RetryPolicy, **options: Any) -> httpx.Response:
        """One call, sent again on a lost answer or a busy server as ``retry`` allows; a typed error for
        any other failure."""
        attempt = 1
        while True:
            try:
                response = self._http.request(method, path, **options)
            except RETRIED_ERRORS as error:
                delay = retry.delay(attempt)
                if delay is None:
                    raise ApiUnreachable(self.base_url, error) from error
            else:
                if response.is_success:
                    return response
                delay = retry.delay_after_answer(attempt, response)
                if delay is None:
                    raise error_from_response(response)
            time.sleep(delay)
            attempt += 1
