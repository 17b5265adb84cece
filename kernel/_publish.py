"""Publishing to JetStream, pipelined, with the stream's acks read raw.

nats-py's ``publish_async`` makes a random token, a future with callbacks and a semaphore per message,
and its acks go through the whole ``Msg`` machinery: about 20k events/s on this project's 2-core
machines, less than the recorder takes. Here each message's reply subject is ``<inbox>.<n>`` with a
counter, and the ack, read raw (``RawClient``), resolves the message's future with its stream
sequence: about 2.5 times as many events per second as ``publish_async``, and with the Works'
batching one Work reaches ~50k acknowledged events/s (``python bench/work_publish.py``).

A message stays here until its ack comes: after a reconnect the unacknowledged ones are sent again
(the stream drops the copies of those it had, by ``Nats-Msg-Id``), since an ack in flight when the
connection broke never comes; when the connection is given up, every waiting future fails.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from ._rawclient import RawClient, drop_raw, status_of
from .errors import KernelError

_NO_RESPONDERS = b"503"


class PublishRefused(KernelError):
    """The stream did not take a message (no stream for its subject, a limit, a stream error)."""


class Publisher:
    """Publishes on ``nc`` and hands out, per message, a future of its stream sequence."""

    def __init__(self, nc: RawClient) -> None:
        self.nc = nc
        self._prefix = ""
        self._count = 0
        self._waiting: dict[bytes, tuple[str, asyncio.Future[int]]] = {}
        self._unacked: dict[bytes, tuple[str, bytes, str]] = {}
        self._sub: Any = None

    async def start(self) -> Publisher:
        self._prefix = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(f"{self._prefix}.*", pending_msgs_limit=0, pending_bytes_limit=0)
        self.nc.raw_sinks[self._sub._id] = self._on_ack
        return self

    @property
    def pending(self) -> int:
        """Messages published and not yet acknowledged."""
        return len(self._waiting)

    async def publish(self, subject: str, data: bytes, msg_id: str) -> asyncio.Future[int]:
        """Send one message (``Nats-Msg-Id: msg_id`` for the stream's de-duplication)."""
        self._count += 1
        token = str(self._count)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        key = token.encode()
        self._waiting[key] = (subject, future)
        self._unacked[key] = (subject, data, msg_id)
        await self.nc.publish(subject, data, reply=f"{self._prefix}.{token}", headers={"Nats-Msg-Id": msg_id})
        return future

    async def resend(self) -> None:
        """Send every unacknowledged message again (after a reconnect)."""
        for key, (subject, data, msg_id) in list(self._unacked.items()):
            if key in self._waiting:
                reply = f"{self._prefix}.{key.decode()}"
                await self.nc.publish(subject, data, reply=reply, headers={"Nats-Msg-Id": msg_id})

    def fail_all(self, exc: BaseException) -> None:
        """Fail every message still waiting for its ack (the connection is given up)."""
        for _, future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
        self._waiting.clear()
        self._unacked.clear()

    def _on_ack(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        key = subject[len(self._prefix) + 1 :]
        self._unacked.pop(key, None)
        entry = self._waiting.pop(key, None)
        if entry is None:
            return
        published, future = entry
        if future.done():
            return
        if not data:
            if status_of(headers) == _NO_RESPONDERS:
                future.set_exception(PublishRefused(f"no JetStream stream takes subject {published!r}"))
            else:
                future.set_exception(PublishRefused(f"empty reply to {published!r}: {headers!r}"))
            return
        ack: Any = None
        try:
            ack = orjson.loads(data)
            future.set_result(int(ack["seq"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            error = ack.get("error", {}) if isinstance(ack, dict) else {}
            reason = error.get("description") or data.decode(errors="replace")
            future.set_exception(PublishRefused(f"the stream refused {published!r}: {reason}"))

    async def close(self) -> None:
        await drop_raw(self.nc, self._sub)
        self._sub = None
        for _, future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()
        self._unacked.clear()
