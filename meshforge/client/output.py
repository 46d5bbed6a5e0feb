"""What the CLI prints: with ``--json`` one JSON document on stdout and nothing else there; without it,
lines for people on stdout. Notes and errors go to stderr either way."""

from __future__ import annotations

import json
import sys
from typing import Any

from meshforge.client.errors import ApiError, ClientError


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, text: str) -> None:
        """The command's answer: ``data`` as JSON, or ``text``."""
        if self.as_json:
            print(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            print(text)

    def note(self, text: str) -> None:
        print(f"meshforge: {text}", file=sys.stderr)

    def failure(self, error: ClientError) -> None:
        """An error of the API or of the connection: a line on stderr; with --json, also as JSON."""
        self.note(str(error))
        if self.as_json:
            body: dict[str, Any] = {"type": type(error).__name__, "detail": str(error)}
            if isinstance(error, ApiError):
                body.update(status=error.status, code=error.code, detail=error.detail)
            print(json.dumps({"error": body}, indent=2, ensure_ascii=False))


def size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"
