"""Log lines in both formats (MESHFORGE_LOG_FORMAT): the fields, and the job id on every line about a job,
including lines written in a stage's worker thread."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from starlette.concurrency import run_in_threadpool

from meshforge.logging import configure_logging, job_context, work_span

JOB = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """What the handler configure_logging installs writes; the root logger is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def configure(stderr: io.StringIO, service: str, log_format: str = "text") -> None:
    configure_logging(service, "INFO", log_format)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
    handler.setStream(stderr)  # pytest swaps sys.stderr per test phase: the handler's stream is ours


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_carry_the_fields_and_the_job_id_only_inside_a_job(stderr: io.StringIO) -> None:
    configure(stderr, "dispatcher", "json")
    log = logging.getLogger("orchestrator.pipeline")
    log.info("before")
    with job_context(JOB):
        log.warning("job %s failed: %s", JOB, "image stage failed: no")
    log.info("after")
    before, during, after = json_lines(stderr.getvalue())
    assert set(before) == {"time", "level", "service", "logger", "message"}
    assert during == {
        "time": during["time"],
        "level": "WARNING",
        "service": "dispatcher",
        "logger": "orchestrator.pipeline",
        "message": f"job {JOB} failed: image stage failed: no",
        "job_id": JOB,
    }
    assert str(during["time"]).endswith("Z") and len(str(during["time"])) == len("2025-01-02T10:00:00.123Z")
    assert "job_id" not in after


def test_an_exception_is_one_json_line_with_its_traceback(stderr: io.StringIO) -> None:
    configure(stderr, "dispatcher", "json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("dispatcher").exception("unexpected")
    (line,) = json_lines(stderr.getvalue())
    assert line["message"] == "unexpected"
    assert "RuntimeError: boom" in str(line["exception"])


def test_stage_work_names_its_job_also_in_its_worker_thread(stderr: io.StringIO) -> None:
    configure(stderr, "reconstruction-service", "json")

    async def work() -> None:
        with work_span(JOB, "reconstruction-service"):
            await run_in_threadpool(logging.getLogger("reconstruction_service.carving").info, "carving")
        logging.getLogger("uvicorn.error").info("next request")

    asyncio.run(work())
    lines = json_lines(stderr.getvalue())
    assert [line["message"] for line in lines][1] == "carving"
    assert [line.get("job_id") for line in lines] == [JOB, JOB, JOB, None]
    assert str(lines[0]["message"]).startswith(f"work started job={JOB} stage=reconstruction-service at=")


def test_text_lines_show_the_job_when_known(stderr: io.StringIO) -> None:
    configure(stderr, "dispatcher")
    log = logging.getLogger("dispatcher")
    with job_context(JOB):
        log.info("started")
    log.info("taking jobs")
    during, after = stderr.getvalue().splitlines()
    assert during.endswith(f"INFO    dispatcher job={JOB}: started")
    assert after.endswith("INFO    dispatcher: taking jobs")
