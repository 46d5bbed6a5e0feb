"""One log format for every service: time, level, service, message, with the job id when known."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def configure_logging(service: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {service}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; one line per stage call is the dispatcher's job.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return logging.getLogger(service)


WORK_LOG = logging.getLogger("meshforge.work")


@contextmanager
def work_span(job_id: str | None, stage: str) -> Iterator[None]:
    """Logs when a stage service starts and ends a job's work, with wall-clock times.

    These lines are the stage side's own record of which job ran where and when; the fault soak
    (benchmarks/soak.py) reads them to prove that no job's work ever ran twice at the same time.
    """
    job = job_id or "-"
    WORK_LOG.info("work started job=%s stage=%s at=%.3f", job, stage, time.time())
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        WORK_LOG.info("work ended job=%s stage=%s at=%.3f outcome=%s", job, stage, time.time(), outcome)
