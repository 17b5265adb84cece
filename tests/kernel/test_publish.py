"""Publishing against a real nats-server: acks in order, de-duplication, and refusals that are
reported (by the publisher, and by a Work's barrier) instead of lost."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from lightning_kernel._bus import Bus
from lightning_kernel._codec import encode
from lightning_kernel._events import WorkStateChanged
from lightning_kernel._natsserver import EmbeddedNats
from lightning_kernel._publish import PublishRefused
from lightning_kernel._runtime_io import BusThread
from lightning_kernel.errors import EventError

T = TypeVar("T")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    s = EmbeddedNats.start(str(tmp_path / "nats"))
    yield s
    s.stop()


def _change(i: int) -> WorkStateChanged:
    return WorkStateChanged(work="root.w", call="c", changes={"i": i})


@contextlib.asynccontextmanager
async def _bus(server: EmbeddedNats) -> AsyncIterator[Bus]:
    bus = await Bus.connect(server.url, server.token)
    try:
        await bus.ensure_streams()
        yield bus
    finally:
        await bus.close()


def _on_bus(server: EmbeddedNats, fn: Callable[[Bus], Awaitable[T]]) -> T:
    """``fn(bus)`` on a connection of its own, from a test that is not async."""

    async def main() -> T:
        async with _bus(server) as bus:
            return await fn(bus)

    return asyncio.run(main())


def test_acks_come_back_in_order_and_a_republish_is_dropped(server: EmbeddedNats) -> None:
    async def main() -> None:
        async with _bus(server) as bus:
            seqs = await bus.publish_many("r1", [_change(i) for i in range(3000)], "t")
            assert seqs == list(range(seqs[0], seqs[0] + 3000))
            # The same event id again, within the duplicate window: the stream keeps the first.
            subject, eid, data = encode(_change(0), "r1", "t", event_id="fixed-id")
            first = await (await bus.send(subject, eid, data))
            again = await (await bus.send(subject, eid, data))
            assert again == first and await bus.last_seq() == first
            assert (await bus.publisher()).pending == 0

    asyncio.run(main())


def test_a_subject_no_stream_takes_is_refused_by_name(server: EmbeddedNats) -> None:
    async def main() -> None:
        async with _bus(server) as bus:
            with pytest.raises(
                PublishRefused, match=re.escape("no JetStream stream takes subject 'elsewhere.x'")
            ):
                await (await bus.send("elsewhere.x", "id1", b"{}"))

    asyncio.run(main())


def test_a_work_barrier_raises_when_the_stream_refused_an_event(server: EmbeddedNats) -> None:
    _on_bus(server, Bus.last_seq)  # the streams exist
    work = BusThread(server.url, server.token, "r2", "root.w")
    try:
        for i in range(100):
            work.emit(_change(i))
        work.barrier(timeout=10)  # all acknowledged
        _on_bus(server, lambda bus: bus.js.delete_stream("LK"))
        work.emit(_change(100))
        with pytest.raises(
            PublishRefused, match=re.escape("no JetStream stream takes subject 'lk.r2.evt.root:w'")
        ):
            work.barrier(timeout=10)
        work.emit(_change(101))
        with pytest.raises(PublishRefused):
            work.barrier(timeout=10)  # and the next event, while the stream is gone
    finally:
        work.close()


def test_an_event_that_is_not_json_fails_the_barrier_and_the_rest_still_go(server: EmbeddedNats) -> None:
    before = _on_bus(server, Bus.last_seq)
    work = BusThread(server.url, server.token, "r3", "root.w")
    try:
        work.emit(WorkStateChanged(work="root.w", call="c", changes={"bad": object()}))
        work.emit(_change(1))
        with pytest.raises(EventError, match="not JSON"):
            work.barrier(timeout=10)
        work.emit(_change(2))
        work.barrier(timeout=10)
    finally:
        work.close()
    assert _on_bus(server, Bus.last_seq) - before == 2
