"""A durable JetStream pull consumer read in batches, for the recorder.

nats-py's ``fetch`` hands out messages one ``next_msg`` at a time, each making two tasks and a uuid,
and every message it delivers is first parsed into a ``Msg`` with its headers, queued, and handed to
a task: at tens of thousands of events per second that is most of the recorder's time. This puller
speaks the pull protocol itself: one open pull request for ``batch`` messages at a time, messages
gathered as they arrive (the server sends them at once, it does not wait for the batch to fill), and
a new request as soon as the last one is spent or expires. Its inbox is served raw by ``RawClient``;
the stream sequence is read from the reply (ack) subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from ._rawclient import RawClient, drop_raw, status_of, stream_seq

Raw = tuple[str, bytes, str]
"""One message: subject, payload, and the reply subject that acknowledges it."""

_HEARTBEAT = b"100"
_RENEW = (b"404", b"408")
_GONE = (b"409 Consumer Deleted", b"503")
"""The consumer was deleted (by another kernel, an operator), or nothing answers for it any more."""

__all__ = ["BatchPuller", "Raw", "stream_seq"]


class BatchPuller:
    """Pull ``stream``'s durable consumer ``consumer`` in batches; acknowledge with :meth:`ack`."""

    def __init__(
        self, nc: RawClient, stream: str, consumer: str, batch: int = 1000, expires: float = 2.0
    ) -> None:
        self.nc = nc
        self.stream = stream
        self.consumer = consumer
        self.batch = batch
        self.expires = expires
        self._buf: list[Raw] = []
        self._arrived = asyncio.Event()
        self._owed = 0
        self._heard_at = 0.0
        self._sub: Any = None
        self._renewal: asyncio.Future[None] | None = None  # keeps the renewing task referenced
        self._inbox = ""
        self.gone = False
        """The consumer is no more: its owner makes it again (``Recorder``), or nothing comes."""

    async def start(self) -> BatchPuller:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, pending_msgs_limit=0, pending_bytes_limit=0)
        self.nc.raw_sinks[self._sub._id] = self._on_raw
        await self._request()
        return self

    async def _request(self) -> None:
        body = {"batch": self.batch, "expires": int(self.expires * 1e9)}
        self._owed = self.batch
        self._heard_at = time.monotonic()
        await self.nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}",
            json.dumps(body).encode(),
            reply=self._inbox,
        )

    def _on_raw(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        self._heard_at = time.monotonic()
        if reply:
            self._buf.append((subject.decode(), data, reply.decode()))
            self._owed -= 1
            self._arrived.set()
        else:
            status = status_of(headers)
            if status == _HEARTBEAT:
                return
            # The request is over, whatever it still owed: expired (408) or without messages (404)
            # it is renewed at once; anything else (409: leadership change, consumer deleted) on the
            # next check, so that a consumer that is gone is not asked in a tight loop.
            self._owed = 0
            if headers is not None and any(headers[9:].startswith(g) for g in _GONE):
                self.gone = True
            if status not in _RENEW:
                return
        if self._owed <= 0:
            self._renewal = asyncio.ensure_future(self._request())

    async def next(self, limit: int, timeout: float) -> list[Raw]:
        """Up to ``limit`` messages, as soon as there is at least one; ``[]`` after ``timeout``."""
        if not self._buf:
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
            if not self._buf:
                await self._check_request()
                return []
        out, self._buf = self._buf[:limit], self._buf[limit:]
        return out

    async def _check_request(self) -> None:
        # A request lost on a reconnect never answers: after expires (and a second), ask again.
        if self._owed <= 0 or time.monotonic() - self._heard_at > self.expires + 1.0:
            await self._request()

    async def ack(self, reply: str) -> None:
        """Acknowledge the message with this reply subject, and (AckAll) everything before it."""
        await self.nc.publish(reply, b"+ACK")

    async def unsubscribe(self) -> None:
        await drop_raw(self.nc, self._sub)
        self._sub = None
