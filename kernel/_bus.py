"""The one adapter over nats-py: JetStream streams, publishing, and the consumers the kernel uses.

The rest of the kernel talks to ``Bus``. Events are published with ``Nats-Msg-Id`` = event id, so a
re-publish inside the stream's duplicate window is dropped by the server. A JetStream ack means the
server has the message in its store (page cache), not that it reached the disk: everything survives
a process kill; surviving a power cut needs ``sync_interval: always`` or a clustered stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._nats_import import import_nats

import_nats()  # before nats is imported: see _nats_import

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from . import _json
from ._events import EVENT_STREAM, LOG_STREAM, Event, decode_record, encode
from ._nats_import import enable_websockets
from ._publish import Publisher
from ._pull import BatchPuller
from ._rawclient import RawClient
from ._records import EventRecord
from .errors import ServiceUnreachable

RecordHandler = Callable[[EventRecord], Awaitable[None] | None]


def _mask(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def _probe(url: str) -> None:
    """Fail at once, naming the URL, when nothing listens there (nats-py would retry for ever)."""
    from urllib.parse import urlsplit

    for one in url.split(","):
        parts = urlsplit(one.strip() if "://" in one else f"nats://{one.strip()}")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 4222), 3)
        except (OSError, asyncio.TimeoutError) as exc:
            last = exc
            continue
        writer.close()
        return
    reason = str(last) or type(last).__name__
    raise ServiceUnreachable("NATS", _mask(url), f"{reason}; is nats-server running there?")


class Bus:
    """A connection to NATS with JetStream."""

    def __init__(self, nc: RawClient, url: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.url = url
        self._publisher: asyncio.Future[Publisher] | None = None

    @classmethod
    async def connect(cls, url: str, token: str | None = None, name: str = "lightning-kernel") -> Bus:
        async def quiet(_: Exception) -> None:
            return None

        await _probe(url)
        enable_websockets(url)
        try:
            nc = RawClient()
            await nc.connect(
                url,
                token=token,
                name=name,
                connect_timeout=3,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.2,  # type: ignore[arg-type]  # annotated int, read as seconds
                allow_reconnect=True,
                error_cb=quiet,
                pending_size=64 * 1024 * 1024,
            )
        except (OSError, nats.errors.Error, asyncio.TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise ServiceUnreachable("NATS", _mask(url), f"{reason}; is nats-server running there?") from None
        return cls(nc, url)

    async def ensure_streams(self) -> None:
        for name, subjects in ((EVENT_STREAM, ["lk.>"]), (LOG_STREAM, ["lklog.>"])):
            config = StreamConfig(name=name, subjects=subjects, storage=StorageType.FILE)
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.update_stream(config)
            except nats.errors.NoRespondersError:
                raise ServiceUnreachable(
                    "NATS JetStream",
                    _mask(self.url),
                    "JetStream is not enabled on that server (start it with -js)",
                ) from None

    async def close(self) -> None:
        # flush, not drain: what was published is already acknowledged, and draining a busy ordered
        # consumer can take its whole 30 s timeout.
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)
        if self._publisher is not None and self._publisher.done() and not self._publisher.exception():
            await self._publisher.result().close()
        with contextlib.suppress(Exception):
            await self.nc.close()

    # -- publishing ---------------------------------------------------------------------------------

    async def publisher(self) -> Publisher:
        """This connection's JetStream publisher, started on first use."""
        if self._publisher is None:
            self._publisher = asyncio.ensure_future(Publisher(self.nc).start())
        return await asyncio.shield(self._publisher)

    async def send(self, subject: str, event_id: str, data: bytes) -> asyncio.Future[int]:
        """Publish an event as ``encode`` made it, without waiting: a future of its stream sequence."""
        return await (await self.publisher()).publish(subject, data, event_id)

    async def publish(self, run_id: str, event: Event, source: str) -> int:
        """Publish one event and wait for the stream's ack; returns its global sequence."""
        return await (await self.send(*encode(event, run_id, source)))

    async def publish_many(self, run_id: str, events: Sequence[Event], source: str) -> list[int]:
        """Publish in order, pipelined (one connection keeps the order), and wait for every ack."""
        futures = [await self.send(*encode(event, run_id, source)) for event in events]
        return list(await asyncio.gather(*futures))

    async def publish_log(self, run_id: str, component: str, data: bytes) -> None:
        await self.nc.publish(f"lklog.{run_id}.{component.replace('.', ':')}", data)

    async def last_event(self, subject: str) -> dict[str, Any] | None:
        """The payload of the newest event on ``subject`` (one request to the stream), None if none."""
        try:
            msg = await self.js.get_last_msg(EVENT_STREAM, subject)
        except nats.js.errors.NotFoundError:
            return None
        return dict(_json.loads(msg.data)) if msg.data else None

    async def last_seq(self) -> int:
        info = await self.js.stream_info(EVENT_STREAM)
        return int(info.state.last_seq)

    # -- consuming ----------------------------------------------------------------------------------

    async def listen(self, subject: str, handler: Callable[[dict[str, Any]], None]) -> Any:
        """Call ``handler`` with the decoded payload of every event published on ``subject`` from
        now on: a plain subscription, no JetStream consumer (for answers awaited briefly)."""

        async def on_msg(msg: Msg) -> None:
            with contextlib.suppress(ValueError):
                handler(_json.loads(msg.data))

        return await self.nc.subscribe(subject, cb=on_msg)

    async def follow(self, subject: str, start_seq: int, handler: RecordHandler) -> Any:
        """Deliver every event on ``subject`` from ``start_seq`` on, in stream order, to ``handler``.

        An ordered consumer: no acks, no state on the server, re-created by the client on gaps.
        """

        async def on_msg(msg: Msg) -> None:
            seq = msg.metadata.sequence.stream
            result = handler(decode_record(msg.data, seq))
            if result is not None:
                await result

        return await self.js.subscribe(
            subject,
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=max(1, start_seq)),
            pending_msgs_limit=1_000_000,
        )

    async def durable(
        self, stream: str, name: str, subject: str, start_seq: int | None = None
    ) -> BatchPuller:
        """A durable pull consumer that acknowledges everything up to the last message of a batch.

        With ``start_seq`` the consumer starts there, whatever the server remembers of a consumer
        that a crashed kernel left behind (messages it fetched but never acknowledged would only come
        again after ``ack_wait``). Without it, such a consumer is taken over from its ack floor.
        """
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=subject,
            ack_policy=AckPolicy.ALL,
            max_ack_pending=100_000,
            ack_wait=60,
            deliver_policy=DeliverPolicy.ALL,
        )
        try:
            info = await self.js.consumer_info(stream, name)
        except nats.js.errors.NotFoundError:
            info = None
        if start_seq is None and info is not None and (info.num_ack_pending or 0) > 0:
            start_seq = int(info.ack_floor.stream_seq or 0) + 1
        if start_seq is not None:
            if info is not None:
                await self.js.delete_consumer(stream, name)
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = max(1, start_seq)
        if info is None or start_seq is not None:
            await self.js.add_consumer(stream, config)
        return await BatchPuller(self.nc, stream, name).start()
