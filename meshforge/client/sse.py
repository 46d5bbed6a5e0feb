"""Server-Sent Events, parsed line by line (the WHATWG event-stream format, as GET /3d/events sends it).

Sans-IO: the sync and the async client feed it the lines of a response and get whole events back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One event of a job's stream: ``state``, ``progress``, ``stage`` or ``end`` with its JSON ``data``;
    ``id`` is set on the events a reconnect can resume after."""

    name: str
    data: dict[str, Any]
    id: str | None = None


@dataclass
class SseParser:
    """Collects fields until a blank line ends an event. ``last_event_id`` is the newest id seen, to send
    back as ``Last-Event-ID`` when the connection has to be made again; ``retry_ms`` what the server asked
    reconnects to wait, if it did."""

    last_event_id: str | None = None
    retry_ms: int | None = None
    _name: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> Event | None:
        """One line, without its line break; returns the event a blank line completes."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):  # a comment: the server's keep-alive
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        name, data, event_id = self._name or "message", self._data, self._id
        self._name, self._data, self._id = "", [], None
        if event_id is not None:
            self.last_event_id = event_id
        if not data:  # the format drops events without data
            return None
        text = "\n".join(data)
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        return Event(name, decoded if isinstance(decoded, dict) else {"data": text}, event_id)
