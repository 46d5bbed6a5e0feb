"""One log format for every service: time, level, service, message, with the job id when known.

``MESHFORGE_LOG_FORMAT`` chooses how the lines look: ``text`` (the default, for a person reading
``make run``) or ``json`` (one JSON object per line, for a log collector), with the same fields:

    2025-01-02 10:00:00,123 INFO    dispatcher job=3f…: job 3f… started
    {"time": "2025-01-02T10:00:00.123Z", "level": "INFO", "service": "dispatcher",
     "logger": "dispatcher", "message": "job 3f… started", "job_id": "3f…"}

The job id comes from a context variable, set for as long as a job's work runs (``job_context``: the
dispatcher around each job, ``work_span`` in the stage services), so every line about a job names it,
whichever module wrote it, including a stage's worker thread (asyncio tasks and Starlette's thread pool
copy the context).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from meshforge.metrics import observe_work

_job_id: ContextVar[str | None] = ContextVar("meshforge_log_job_id", default=None)


def current_log_job_id() -> str | None:
    return _job_id.get()


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Every log line written inside (by this task, the tasks and threads it starts) names ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class _JobIdFilter(logging.Filter):
    """Puts the current job id on each record, unless the call gave one (``extra={"job_id": …}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(origin)s: %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", None)
        record.origin = f"{self.service} job={job_id}" if job_id else self.service
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``job_id`` only on lines about a job, ``exception`` only with one."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id:
            line["job_id"] = job_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


def configure_logging(service: str, level: str = "INFO", log_format: str = "text") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    handler.setFormatter(JsonFormatter(service) if log_format == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warnings become log lines too, one format for all
    # httpx logs every request at INFO; one line per stage call is the dispatcher's job.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return logging.getLogger(service)


WORK_LOG = logging.getLogger("meshforge.work")


@contextmanager
def work_span(job_id: str | None, stage: str) -> Iterator[None]:
    """A stage service's piece of work for a job: logged when it starts and ends, with wall-clock
    times; counted in the replica's busy metrics (meshforge.metrics); and every line logged inside
    names the job.

    The start and end lines are the stage side's own record of which job ran where and when; the fault
    soak (benchmarks/soak.py) reads them to prove that no job's work ever ran twice at the same time.
    """
    job = job_id or "-"
    with job_context(job_id), observe_work(stage):
        WORK_LOG.info("work started job=%s stage=%s at=%.3f", job, stage, time.time())
        outcome = "ok"
        try:
            yield
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            WORK_LOG.info("work ended job=%s stage=%s at=%.3f outcome=%s", job, stage, time.time(), outcome)
