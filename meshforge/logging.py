"""One log format for every service: time, level, service, message, with the job id when known."""

from __future__ import annotations

import logging
import sys


def configure_logging(service: str, level: str = "INFO") -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {service}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; one line per stage call is the dispatcher's job.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return logging.getLogger(service)
