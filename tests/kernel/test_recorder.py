"""The recorder against a real nats-server and SQLite: every event lands once, in order, across
pull requests that expire, restarts of the recorder, and log lines beside the events."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightning_kernel._bus import Bus
from lightning_kernel._events import RunCreated, WorkStateChanged
from lightning_kernel._natsserver import EmbeddedNats
from lightning_kernel._pull import BatchPuller, stream_seq
from lightning_kernel._recorder import Recorder
from lightning_kernel._sql import open_store  # type: ignore[import-not-found,unused-ignore]

COMPONENTS = {
    "root": {"kind": "flow", "vars": {}, "spec": {}},
    "root.w": {"kind": "work", "vars": {"i": 0}, "spec": {}},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    s = EmbeddedNats.start(str(tmp_path / "nats"))
    yield s
    s.stop()


def test_stream_seq_reads_both_ack_subject_forms() -> None:
    assert stream_seq("$JS.ACK.LK.lk-recorder.1.42.40.1700000000000000000.7") == 42
    assert stream_seq("$JS.ACK.hub.ACCHASH.LK.lk-recorder.1.42.40.1700000000000000000.7.x1y2") == 42
    with pytest.raises(ValueError, match=re.escape("not a JetStream ack subject: 'lk.r1.run'")):
        stream_seq("lk.r1.run")


async def _publish(bus: Bus, run: str, values: range) -> int:
    events = [WorkStateChanged(work="root.w", call="c", changes={"i": i}) for i in values]
    return (await bus.publish_many(run, events, "test"))[-1]


def test_every_event_is_recorded_once_in_order_across_restarts(server: EmbeddedNats, tmp_path: Path) -> None:
    async def main() -> None:
        bus = await Bus.connect(server.url, server.token)
        await bus.ensure_streams()
        store = open_store(f"sqlite:///{tmp_path}/k.db")
        run = f"r{secrets.token_hex(3)}"
        await bus.publish(run, RunCreated(name="t", app_file="t.py", app="-", components=COMPONENTS), "t")
        first = await _publish(bus, run, range(0, 2500))  # in the stream before the recorder starts
        recorder = Recorder(bus, store, snapshot_every=700)
        await recorder.start()
        assert await recorder.wait_recorded(first, timeout=30)
        last = await _publish(bus, run, range(2500, 3000))  # while it runs
        assert await recorder.wait_recorded(last, timeout=30)
        await recorder.stop()

        # Published while no recorder runs; the next one carries on from SQL, duplicating nothing.
        last = await _publish(bus, run, range(3000, 3100))
        again = Recorder(bus, store, snapshot_every=700)
        await again.start()
        assert await again.wait_recorded(last, timeout=30)
        await again.stop()

        events = store.events(run)
        assert [e.body["changes"]["i"] for e in events[1:]] == list(range(3100))
        assert [e.seq for e in events] == sorted({e.seq for e in events})
        assert store.run(run).last_seq == last
        await bus.close()
        store.close()

    asyncio.run(main())


def test_a_pull_request_that_expires_is_renewed(server: EmbeddedNats) -> None:
    async def main() -> None:
        bus = await Bus.connect(server.url, server.token)
        await bus.ensure_streams()
        from nats.js.api import AckPolicy, ConsumerConfig

        run = f"r{secrets.token_hex(3)}"
        name = f"c{run}"
        await bus.js.add_consumer(
            "LK", ConsumerConfig(durable_name=name, filter_subject=f"lk.{run}.>", ack_policy=AckPolicy.ALL)
        )
        puller = await BatchPuller(bus.nc, "LK", name, batch=10, expires=0.2).start()
        assert await puller.next(100, timeout=0.6) == []  # two requests expired meanwhile
        seq = await _publish(bus, run, range(25))
        got: list[tuple[str, bytes, str]] = []
        while len(got) < 25:
            more = await puller.next(100, timeout=2)
            assert more, f"only {len(got)} of 25 messages came"
            got.extend(more)
        assert [json.loads(data)["body"]["changes"]["i"] for _, data, _ in got] == list(range(25))
        assert stream_seq(got[-1][2]) == seq and all(s.startswith(f"lk.{run}.") for s, _, _ in got)
        await puller.ack(got[-1][2])
        await bus.nc.flush()
        # The server takes an ack in its own time (flush only says it was sent): wait for it.
        for _ in range(100):
            info = await bus.js.consumer_info("LK", name)
            if info.ack_floor.stream_seq == seq:
                break
            await asyncio.sleep(0.05)
        assert info.ack_floor.stream_seq == seq and info.num_ack_pending == 0
        await puller.unsubscribe()
        await bus.close()

    asyncio.run(main())


def test_log_lines_are_recorded_beside_events(server: EmbeddedNats, tmp_path: Path) -> None:
    async def main() -> None:
        bus = await Bus.connect(server.url, server.token)
        await bus.ensure_streams()
        store = open_store(f"sqlite:///{tmp_path}/k.db")
        recorder = Recorder(bus, store)
        await recorder.start()
        run = f"r{secrets.token_hex(3)}"
        seq = await bus.publish(
            run, RunCreated(name="t", app_file="t.py", app="-", components=COMPONENTS), "t"
        )
        for i in range(5):
            await bus.publish_log(
                run, "root.w", json.dumps({"t": 1.0 + i, "s": "stdout", "l": f"line {i}"}).encode()
            )
        assert await recorder.wait_recorded(seq, timeout=30)
        for _ in range(100):
            lines = store.logs(run)
            if len(lines) == 5:
                break
            await asyncio.sleep(0.05)
        assert [(x.component, x.line) for x in lines] == [("root.w", f"line {i}") for i in range(5)]
        await recorder.stop()
        await bus.close()
        store.close()

    asyncio.run(main())


def test_a_consumer_deleted_under_the_recorder_is_made_again(server: EmbeddedNats, tmp_path: Path) -> None:
    """Another kernel (or an operator) deleted the recorder's durable consumer: it records on from
    what SQL holds instead of asking a consumer that is gone for ever."""
    from lightning_kernel._events import EVENT_STREAM

    async def main() -> None:
        bus = await Bus.connect(server.url, server.token)
        await bus.ensure_streams()
        store = open_store(f"sqlite:///{tmp_path}/k.db")
        run = f"r{secrets.token_hex(3)}"
        await bus.publish(run, RunCreated(name="t", app_file="t.py", app="-", components=COMPONENTS), "t")
        recorder = Recorder(bus, store)
        await recorder.start()
        assert await recorder.wait_recorded(await _publish(bus, run, range(0, 100)), timeout=30)
        await bus.js.delete_consumer(EVENT_STREAM, f"lk-rec-{recorder.db_id}")
        last = await _publish(bus, run, range(100, 200))
        assert await recorder.wait_recorded(last, timeout=30), "nothing recorded after the deletion"
        changes = [e.body["changes"]["i"] for e in store.events(run) if e.type == WorkStateChanged.TYPE]
        assert changes == list(range(200)), "each event once, in order"
        await recorder.stop()
        await bus.close()
        store.close()

    asyncio.run(main())
