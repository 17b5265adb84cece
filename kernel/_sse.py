"""Server-sent events (``text/event-stream``), the wire format of ``GET /api/runs/{run}/events/stream``.

Pure functions, tested without sockets: ``encode`` writes one message, ``Parser`` reads a stream of
lines back into messages. A message of a run's stream is::

    id: <seq>
    event: event            (or ``log``; ``end`` says the run ended and the stream is over)
    data: <one JSON object>

A comment line (``: keep-alive``) keeps proxies and the client's socket timeout from closing an idle
stream. A client that lost the stream reconnects with ``Last-Event-ID: <seq>`` (or ``?after=<seq>``)
and gets what came after.

Tried and left: a WebSocket (a second protocol for a one-way feed, and a handshake the guard's
checks would have to learn); JSON lines over a chunked response (no standard reconnection, no way
for a browser's ``EventSource`` to read it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KEEP_ALIVE = b": keep-alive\n\n"


def encode(event: str, data: Any, id: int | None = None) -> bytes:
    """One message: ``data`` as compact JSON on one ``data:`` line (JSON has no raw newlines)."""
    head = f"id: {id}\n" if id is not None else ""
    body = json.dumps(data, separators=(",", ":"))
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


@dataclass(frozen=True, slots=True)
class Message:
    event: str
    data: Any
    id: str | None


class Parser:
    """Feed it a stream's lines (``feed(line)``); it returns a ``Message`` at each blank line that ends one.

    As the standard says: ``data`` lines join with newlines, a missing ``event`` is ``message``,
    comments and unknown fields are skipped, a last ``id`` carries over to later messages."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None

    def feed(self, line: str) -> Message | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = ""
                return None
            text = "\n".join(self._data)
            message = Message(self._event or "message", json.loads(text), self.last_id)
            self._event, self._data = "", []
            return message
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self.last_id = value
        return None
