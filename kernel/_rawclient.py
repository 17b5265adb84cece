"""nats-py's client, where a subscription can take its messages raw.

nats-py turns every message into a ``Msg``, parses its headers, queues it and hands it to a task: at
tens of thousands of JetStream messages per second (the recorder's deliveries, the publishers' acks)
that is most of the time spent. The kernel's hot paths register a sink for their subscription instead
and get the protocol parser's bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ._nats_import import import_nats

import_nats()  # before nats is imported: see _nats_import

from nats.aio.client import Client

RawSink = Callable[[bytes, bytes, bytes, "bytes | None"], None]


class RawClient(Client):
    """nats-py's client, where a subscription can take its messages raw.

    ``raw_sinks[sid]`` is called with ``(subject, reply, payload, headers)`` bytes from the parser,
    instead of nats-py building a ``Msg``, parsing its headers and queueing it for a task. It relies
    on ``Client._process_msg(sid, subject, reply, data, headers)``, unchanged since nats-py 2.0.
    """

    def __init__(self) -> None:
        super().__init__()
        self.raw_sinks: dict[int, RawSink] = {}

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        sink = self.raw_sinks.get(sid)
        if sink is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]  # None: no headers
        else:
            sink(subject, reply, data, headers)


async def drop_raw(nc: RawClient, sub: Any) -> None:
    """Stop a raw subscription: no more messages to its sink, and unsubscribed on the server."""
    if sub is not None:
        nc.raw_sinks.pop(sub._id, None)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def status_of(headers: bytes | None) -> bytes:
    """The status code of a ``NATS/1.0 408 Request Timeout`` header block, or b""."""
    if headers is not None and headers[8:9] == b" ":
        return headers[9:12]
    return b""


def stream_seq(reply: str) -> int:
    """The stream sequence of a JetStream message, from its ack subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``, or with a domain and
    account hash after ``$JS.ACK`` (12 tokens, or 11 from older servers).
    """
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5])
    if len(tokens) >= 11:
        return int(tokens[7])
    raise ValueError(f"not a JetStream ack subject: {reply!r}")
