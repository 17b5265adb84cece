"""The one adapter over nats-py: JetStream streams, publishing, and the consumers the kernel uses.

The rest of the kernel talks to ``Bus``. Events are published with ``Nats-Msg-Id`` = event id, so a
re-publish inside the stream's duplicate window is dropped by the server. A JetStream ack means the
server has the message in its store (page cache), not that it reached the disk: everything survives
a process kill; surviving a power cut needs ``sync_interval: always`` or a clustered stream.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._nats_import import import_nats

import_nats()  # before nats is imported: see _nats_import

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)

from . import _json
from ._codec import encode, live_record
from ._events import EVENT_STREAM, LOG_STREAM, Event
from ._nats_import import enable_websockets
from ._nats_link import ConnectionState, mask
from ._nats_link import probe as probe_url
from ._publish import Publisher
from ._pull import BatchPuller
from ._rawclient import RawClient
from ._records import EventRecord
from .errors import KernelFault, ServiceUnreachable

LEASE_BUCKET = "lk_leases"
STREAM_ID = "lk_stream_id"
"""The stream metadata key holding a stream's identity: a database records one stream, and knows
it again by this id (a stream made anew after its store was removed has another)."""

RecordHandler = Callable[[EventRecord], Awaitable[None] | None]

ACK_TIMEOUT_S = float(os.environ.get("LK_ACK_TIMEOUT_S", "5"))
"""Seconds a connected server may leave a published event unacknowledged before the bus gives up on
it: a JetStream that cannot store a message (its disk full, the stream failed) never answers, and a
publish that waits for ever would hang whoever waits on it (measured from the send, or from the last
reconnect: the unacknowledged are sent again then)."""


class KeyExists(Exception):
    """``kv_create`` of a key that holds a value; ``.value`` and ``.revision`` are what it holds."""

    def __init__(self, value: bytes, revision: int) -> None:
        self.value = value
        self.revision = revision
        super().__init__(f"key exists at revision {revision}")


class WrongRevision(Exception):
    """``kv_update`` whose expected revision is no longer the key's: someone else wrote it."""


@dataclass(frozen=True)
class StreamState:
    """What the kernel needs to know of a stream: its identity and its range of sequences."""

    name: str
    id: str
    first_seq: int
    last_seq: int
    messages: int
    created: bool
    """True when this connection created the stream just now."""


def _stream_state(name: str, info: Any, created: bool) -> StreamState:
    return StreamState(
        name=name,
        id=(info.config.metadata or {}).get(STREAM_ID, ""),
        first_seq=int(info.state.first_seq or 0),
        last_seq=int(info.state.last_seq or 0),
        messages=int(info.state.messages or 0),
        created=created,
    )


class Bus:
    """A connection to NATS with JetStream."""

    def __init__(self, nc: RawClient, url: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.url = url
        self._publisher: asyncio.Future[Publisher] | None = None
        self._kv: Any = None
        self._kv_ttl = 0.0
        self._state = ConnectionState()
        self._given_up: BaseException | None = None
        self._sent: collections.deque[tuple[float, str, asyncio.Future[int]]] = collections.deque()
        """What was published and may still wait for its ack, oldest first (for ``_sweep``)."""
        self._sweeper: asyncio.Task[None] | None = None
        self._back_at = 0.0
        self.on_give_up: list[Callable[[BaseException], None]] = []
        """Called with the fault when the bus gives up by itself (an ack that never came)."""
        self.guard: Callable[[str], None] | None = None
        """Called with each event's subject before it is sent; raises to refuse it (the kernel's
        check that it still holds the run)."""

    @classmethod
    async def connect(
        cls, url: str, token: str | None = None, name: str = "lightning-kernel", probe: bool = True
    ) -> Bus:
        if probe:
            await probe_url(url)
        enable_websockets(url)
        state = ConnectionState()
        try:
            nc = RawClient()
            await asyncio.wait_for(
                nc.connect(
                    url,
                    token=token,
                    name=name,
                    connect_timeout=3,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.2,  # type: ignore[arg-type]  # annotated int, read as seconds
                    allow_reconnect=True,
                    error_cb=state.on_error,
                    disconnected_cb=state.on_disconnected,
                    reconnected_cb=state.on_reconnected,
                    closed_cb=state.on_closed,
                    pending_size=64 * 1024 * 1024,
                ),
                5,
            )
        except (OSError, nats.errors.Error, asyncio.TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            if "authorization" in reason.lower():
                reason += " (a token is needed: --nats-token / LK_NATS_TOKEN)"
            raise ServiceUnreachable("NATS", mask(url), f"{reason}; is nats-server running there?") from None
        bus = cls(nc, url)
        bus._state = state
        return bus

    # -- the connection's health --------------------------------------------------------------------

    @property
    def shown_url(self) -> str:
        return mask(self.url)

    @property
    def lost_at(self) -> float | None:
        """``time.monotonic()`` when the connection was lost, None while it is up."""
        return self._state.lost_at

    @property
    def lost_reason(self) -> str:
        return self._state.reason

    async def connection_changed(self) -> None:
        """Return at the next loss or recovery of the connection."""
        await self._state.changed.wait()
        self._state.changed.clear()

    async def reconnected(self) -> None:
        while self._state.lost_at is not None:
            await self.connection_changed()

    async def ensure_streams(self) -> dict[str, StreamState]:
        """Create the event and log streams unless they exist; each gets an identity (``STREAM_ID``)
        at creation, and an older stream without one is given one."""
        events, logs = await asyncio.gather(
            self._ensure_stream(EVENT_STREAM, ["lk.>"]), self._ensure_stream(LOG_STREAM, ["lklog.>"])
        )
        return {EVENT_STREAM: events, LOG_STREAM: logs}

    async def _ensure_stream(
        self, name: str, subjects: list[str], first_seq: int | None = None
    ) -> StreamState:
        created = False
        try:
            info = await self.js.stream_info(name)
        except nats.js.errors.NotFoundError:
            info = None
        except nats.errors.NoRespondersError:
            raise ServiceUnreachable(
                "NATS JetStream",
                mask(self.url),
                "JetStream is not enabled on that server (start it with -js)",
            ) from None
        if info is None:
            config = StreamConfig(
                name=name,
                subjects=subjects,
                storage=StorageType.FILE,
                metadata={STREAM_ID: secrets.token_hex(8)},
                first_seq=first_seq,
            )
            try:
                info = await self.js.add_stream(config)
                created = True
            except nats.js.errors.BadRequestError:  # created by another kernel meanwhile
                info = await self.js.stream_info(name)
        elif not (info.config.metadata or {}).get(STREAM_ID):
            config = info.config
            config.metadata = {**(config.metadata or {}), STREAM_ID: secrets.token_hex(8)}
            info = await self.js.update_stream(config)
        return _stream_state(name, info, created)

    async def stream_state(self, name: str) -> StreamState:
        return _stream_state(name, await self.js.stream_info(name), created=False)

    async def recreate_stream(self, name: str, first_seq: int) -> StreamState:
        """Delete stream ``name`` and make it anew, numbering from ``first_seq`` (``db adopt-stream``)."""
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self.js.delete_stream(name)
        subjects = ["lk.>"] if name == EVENT_STREAM else ["lklog.>"]
        return await self._ensure_stream(name, subjects, first_seq=first_seq)

    # -- key-value: leases ---------------------------------------------------------------------------

    async def lease_bucket(self, ttl: float) -> float:
        """Make the lease bucket unless it exists; returns its TTL (the first kernel's choice stands)."""
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(LEASE_BUCKET)
            except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
                try:
                    self._kv = await self.js.create_key_value(
                        KeyValueConfig(bucket=LEASE_BUCKET, ttl=ttl, history=1, storage=StorageType.FILE)
                    )
                except nats.js.errors.BadRequestError:
                    self._kv = await self.js.key_value(LEASE_BUCKET)
            status = await self._kv.status()
            self._kv_ttl = float(status.ttl or ttl)
        return self._kv_ttl

    async def kv_create(self, key: str, value: bytes) -> int:
        """Write ``key`` unless it holds a value (``KeyExists``); returns the new revision."""
        if self._given_up is not None:
            raise self._given_up
        assert self._kv is not None, "lease_bucket() first"
        try:
            return int(await self._kv.create(key, value))
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await self.kv_get(key)
            if entry is None:  # expired between the two calls
                return int(await self._kv.create(key, value))
            raise KeyExists(*entry) from None

    async def kv_update(self, key: str, value: bytes, last: int) -> int:
        """Write ``key`` if its revision is still ``last`` (``WrongRevision`` otherwise)."""
        if self._given_up is not None:
            raise self._given_up
        assert self._kv is not None, "lease_bucket() first"
        try:
            return int(await self._kv.update(key, value, last=last))
        except nats.js.errors.KeyWrongLastSequenceError:
            raise WrongRevision(key) from None

    async def kv_get(self, key: str) -> tuple[bytes, int] | None:
        """``(value, revision)`` of ``key``, None if it has none (never written, deleted or expired)."""
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(LEASE_BUCKET)
            except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
                return None
        try:
            entry = await self._kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return bytes(entry.value or b""), int(entry.revision or 0)

    async def kv_delete(self, key: str, last: int | None = None) -> None:
        if self._given_up is not None:
            raise self._given_up
        assert self._kv is not None, "lease_bucket() first"
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.NotFoundError):
            await self._kv.delete(key, last=last)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        # flush, not drain: what was published is already acknowledged, and draining a busy ordered
        # consumer can take its whole 30 s timeout.
        if self._state.lost_at is None:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
        if self._publisher is not None and self._publisher.done() and not self._publisher.exception():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publisher.result().close(), 2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.close(), 3)

    # -- publishing ---------------------------------------------------------------------------------

    async def publisher(self) -> Publisher:
        """This connection's JetStream publisher, started on first use."""
        if self._publisher is None:
            self._publisher = asyncio.ensure_future(Publisher(self.nc).start())

            async def resend() -> None:
                self._back_at = time.monotonic()
                await (await self.publisher()).resend()

            self._state.on_back.append(resend)
        return await asyncio.shield(self._publisher)

    def give_up(self, exc: BaseException) -> None:
        """The connection is given up: every publish waiting for its ack fails with ``exc``, and so
        does every publish from now on (nothing waits for acks that cannot come)."""
        self._given_up = exc
        if self._publisher is not None and self._publisher.done() and not self._publisher.exception():
            self._publisher.result().fail_all(exc)

    async def send(self, subject: str, event_id: str, data: bytes) -> asyncio.Future[int]:
        """Publish an event as ``encode`` made it, without waiting: a future of its stream sequence."""
        if self._given_up is not None:
            raise self._given_up
        if self.guard is not None:
            self.guard(subject)
        future = await (await self.publisher()).publish(subject, data, event_id)
        sent = self._sent
        while sent and sent[0][2].done():
            sent.popleft()
        sent.append((time.monotonic(), subject, future))
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        return future

    async def _sweep(self) -> None:
        """Give up when the oldest unacknowledged publish has waited ``ACK_TIMEOUT_S`` on a live
        connection (a lost one is the kernel's watch's to judge)."""
        sent = self._sent
        while self._given_up is None:
            await asyncio.sleep(min(1.0, ACK_TIMEOUT_S / 4))
            while sent and sent[0][2].done():
                sent.popleft()
            if not sent or self._state.lost_at is not None:
                continue
            at, subject, _ = sent[0]
            waited = time.monotonic() - max(at, self._back_at)
            if waited >= ACK_TIMEOUT_S:
                fault = KernelFault(
                    f"NATS at {self.shown_url} has not acknowledged an event on {subject} for "
                    f"{waited:.0f} s: its JetStream cannot store events (is its disk full? the "
                    "nats-server log says why)"
                )
                self.give_up(fault)
                for callback in self.on_give_up:
                    with contextlib.suppress(Exception):
                        callback(fault)
                return

    async def publish(self, run_id: str, event: Event, source: str) -> int:
        """Publish one event and wait for the stream's ack; returns its global sequence."""
        return await (await self.send(*encode(event, run_id, source)))

    async def publish_many(
        self, run_id: str, events: Sequence[Event], source: str, input_seq: int = 0
    ) -> list[int]:
        """Publish in order, pipelined (one connection keeps the order), and wait for every ack.
        ``input_seq``: the events of a flow iteration, run on the state at that seq."""
        futures = [await self.send(*encode(event, run_id, source, input_seq=input_seq)) for event in events]
        return list(await asyncio.gather(*futures))

    async def publish_log(self, run_id: str, component: str, data: bytes) -> None:
        if self._given_up is not None:
            return
        await self.nc.publish(f"lklog.{run_id}.{component.replace('.', ':')}", data)

    async def last_event(self, subject: str) -> dict[str, Any] | None:
        """The payload of the newest event on ``subject`` (one request to the stream), None if none."""
        try:
            msg = await self.js.get_last_msg(EVENT_STREAM, subject)
        except nats.js.errors.NotFoundError:
            return None
        return dict(_json.loads(msg.data)) if msg.data else None

    async def last_seq_of(self, subject: str) -> int:
        """The stream sequence of the newest event on ``subject``, 0 if there is none."""
        try:
            msg = await self.js.get_last_msg(EVENT_STREAM, subject)
        except nats.js.errors.NotFoundError:
            return 0
        return int(msg.seq or 0)

    async def last_seq(self) -> int:
        info = await self.js.stream_info(EVENT_STREAM)
        return int(info.state.last_seq)

    async def last_log_seq(self) -> int:
        info = await self.js.stream_info(LOG_STREAM)
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
            result = handler(live_record(msg.subject, msg.data, seq))
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
