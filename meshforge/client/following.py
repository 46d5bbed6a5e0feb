"""Following a job to its end (sans-IO, shared by the sync and the async client).

The client reads ``GET /3d/events/{id}``; a dropped or ended-too-soon stream is opened again with
``Last-Event-ID`` (any orchestrator replica resumes it). A server that answers that endpoint with a plain
404 (an older one, without it) is followed by ``GET /3d/status/{id}?wait=`` instead; the events the
caller's ``on_event`` gets are then made up from the changes between two records, so a progress bar
works the same against both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from meshforge.client.errors import ApiUnreachable, WaitTimedOut, error_from_response
from meshforge.client.retry import RetryPolicy
from meshforge.client.sse import Event, SseParser
from meshforge.schemas import JobStatus

EventCallback = Callable[[Event], None]

# The server sends a keep-alive comment every 15 s: a read that waits this long has lost the connection.
STREAM_READ_TIMEOUT = 45.0
# Each poll of an older server waits this long at most, so that progress still shows while it runs.
POLL_WAIT = 2.0


def is_missing_endpoint(response: httpx.Response) -> bool:
    """A 404 for the route itself (an older server), not for the job: unknown jobs are ``not_found``."""
    if response.status_code != 404:
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and body.get("code") == "not_found")


@dataclass
class JobFollower:
    job_id: str
    timeout: float | None
    on_event: EventCallback | None
    retry: RetryPolicy
    base_url: str
    parser: SseParser = field(default_factory=SseParser)
    final: JobStatus | None = None
    ended: bool = False
    state: str | None = None
    _deadline: float | None = None
    _failures: int = 0
    _last_seen: JobStatus | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None:
            self._deadline = time.monotonic() + self.timeout

    def remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def check_deadline(self) -> None:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise WaitTimedOut(self.job_id, self.timeout or 0.0, self.state)

    def stream_headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.parser.last_event_id is not None:
            headers["Last-Event-ID"] = self.parser.last_event_id
        return headers

    def stream_timeout(self, connect: float) -> httpx.Timeout:
        remaining = self.remaining()
        read = STREAM_READ_TIMEOUT if remaining is None else max(0.1, min(STREAM_READ_TIMEOUT, remaining))
        return httpx.Timeout(connect, read=read)

    def feed(self, line: str) -> bool:
        """One line of the stream; True once the job's ``end`` event has come."""
        event = self.parser.feed(line)
        if event is None:
            return False
        self._failures = 0  # the connection works: a later drop starts the retry count afresh
        self._emit(event)
        if event.name == "end":
            self.ended = True
            try:
                self.final = JobStatus.model_validate(event.data)
            except ValidationError:  # the record was gone (retention): only state and message came
                self.final = None
            return True
        return False

    def reconnect_delay(self, failure: Exception | None) -> float:
        """The wait before opening the stream again after it broke (``failure``) or ended early."""
        self._failures += 1
        delay = self.retry.delay(self._failures)
        if delay is None:
            cause = failure or ConnectionError("the event stream kept ending before the job did")
            raise ApiUnreachable(self.base_url, cause)
        if self.parser.retry_ms is not None:
            delay = min(self.retry.max_delay, self.parser.retry_ms / 1000)
        return self._within_deadline(delay)

    def refusal_delay(self, response: httpx.Response) -> float:
        """The wait before asking again after the stream was refused by a busy server; any other
        refusal (or a busy server past the retries) raises its typed error."""
        delay = self.retry.delay_after_answer(self._failures + 1, response)
        if delay is None:
            raise error_from_response(response)
        self._failures += 1
        return self._within_deadline(delay)

    def _within_deadline(self, delay: float) -> float:
        remaining = self.remaining()
        return delay if remaining is None else max(0.0, min(delay, remaining))

    def poll_wait(self) -> float:
        """The first poll answers at once, so the caller sees where the job is; later ones wait."""
        if self._last_seen is None:
            return 0.0
        remaining = self.remaining()
        return POLL_WAIT if remaining is None else max(0.0, min(POLL_WAIT, remaining))

    def observe(self, status: JobStatus) -> bool:
        """A record polled from an older server; True once it is the job's end."""
        before = self._last_seen
        self._last_seen = status
        summary = {
            "job_id": status.job_id,
            "state": status.state.value,
            "progress": status.progress,
            "message": status.message,
        }
        if status.state.is_terminal:
            self.ended, self.final = True, status
            self._emit(Event("end", status.model_dump(mode="json")))
            return True
        if before is None or before.state != status.state:
            self._emit(Event("state", summary))
        elif (before.progress, before.message) != (status.progress, status.message):
            self._emit(Event("progress", summary))
        return False

    def _emit(self, event: Event) -> None:
        if "state" in event.data:
            self.state = str(event.data["state"])
        if self.on_event is not None:
            self.on_event(event)
