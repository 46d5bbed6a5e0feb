"""The progress bar of a long wait, on stderr: the job's state as its label, its progress 0–100 as the bar.

tqdm draws it only when stderr is a terminal, so piped or ``--json`` output stays clean.
"""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm

from meshforge.client.sse import Event

_MESSAGE_CHARS = 48


def label(state: str) -> str:
    """``reconstructing_3d`` → ``reconstructing 3d``."""
    return state.replace("_", " ")


class StageProgress:
    """An ``on_event`` callback for Client.wait that moves a bar; use it as a context manager."""

    def __init__(self, job_id: str, enabled: bool | None = None) -> None:
        self._bar = tqdm(
            total=100,
            desc=f"{job_id[:8]} queued",
            file=sys.stderr,
            disable=None if enabled is None else not enabled,  # None: only on a terminal
            bar_format="{desc} {percentage:3.0f}%|{bar:24}| {elapsed}{postfix}",
            leave=True,
        )
        self._job = job_id[:8]

    def __call__(self, event: Event) -> None:
        state = event.data.get("state")
        if not isinstance(state, str):  # a ``stage`` event: the state events name stages already
            return
        progress = event.data.get("progress")
        if event.name == "end" and state == "completed":
            progress = 100
        self._bar.set_description_str(f"{self._job} {label(state)}", refresh=False)
        message = str(event.data.get("message") or "")
        if len(message) > _MESSAGE_CHARS:
            message = message[: _MESSAGE_CHARS - 1] + "…"
        self._bar.set_postfix_str(message, refresh=False)
        if isinstance(progress, int | float):
            self._bar.n = max(0, min(100, int(progress)))
        self._bar.refresh()

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._bar.close()
