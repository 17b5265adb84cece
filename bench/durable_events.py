"""Durable events per second: published to NATS JetStream, recorded into SQL by the recorder.

Each event is acknowledged by the stream, folded (runs row, snapshots every 500 events) and committed
before the recorder acks its batch: the figure is events durable in SQL per second, end to end.

    python bench/durable_events.py [--events 50000] [--pg postgresql+psycopg://127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from lightning_kernel._bus import Bus
from lightning_kernel._events import RunCreated, WorkStateChanged
from lightning_kernel._natsserver import EmbeddedNats
from lightning_kernel._recorder import Recorder
from lightning_kernel._sql import open_store  # type: ignore[import-not-found,unused-ignore]

COMPONENTS = {
    "root": {"kind": "flow", "vars": {}, "spec": {}},
    "root.w": {"kind": "work", "vars": {"i": 0}, "spec": {}},
}


def _work_process(url: str, token: str, run: str, n: int, ready: Any, go: Any) -> None:
    """Publish ``n`` state changes the way a Work's worker does (BusThread: pipelined, acked)."""
    from lightning_kernel._runtime_io import BusThread

    bus = BusThread(url, token, run, "root.w")
    ready.put(run)
    go.wait()
    for i in range(n):
        bus.emit(WorkStateChanged(work="root.w", call="c", changes={"i": i}))
    bus.barrier(timeout=600)
    bus.close()


async def measure_from_works(db_url: str, n: int, works: int) -> float:
    """Events durable in SQL per second when ``works`` worker processes publish ``n`` in all, as a
    running app does, and the recorder in this (the kernel's) process records them."""
    ctx = multiprocessing.get_context("spawn")
    async with _world(db_url) as (server, bus, _, recorder):
        await recorder.start()
        ready, go = ctx.Queue(), ctx.Event()
        procs = []
        for k in range(works):
            run = f"bench{int(time.time() * 1000)}w{k}"
            created = RunCreated(name="bench", app_file="bench.py", app="-", components=COMPONENTS)
            await bus.publish(run, created, "bench")
            args = (server.url, server.token, run, n // works, ready, go)
            procs.append(ctx.Process(target=_work_process, args=args))
        for p in procs:
            p.start()
        for _ in procs:
            await asyncio.to_thread(ready.get, True, 60)
        first = await bus.last_seq()
        t0 = time.perf_counter()
        go.set()
        for p in procs:
            await asyncio.to_thread(p.join)
        last = await bus.last_seq()
        ok = await recorder.wait_recorded(last, timeout=600)
        elapsed = time.perf_counter() - t0
        assert ok and all(p.exitcode == 0 for p in procs), "a publisher failed or the recorder lagged"
        assert last - first == works * (n // works)
        return (last - first) / elapsed


async def measure(db_url: str, n: int, prepublish: bool = False) -> float:
    """Events durable in SQL per second. ``prepublish``: the events are in the stream first and only
    the recorder's catch-up is timed (publishers are other processes in a real run)."""
    async with _world(db_url) as (_, bus, store, recorder):
        if not prepublish:
            await recorder.start()
        run = f"bench{int(time.time() * 1000)}"
        t0 = time.perf_counter()
        created = RunCreated(name="bench", app_file="bench.py", app="-", components=COMPONENTS)
        await bus.publish(run, created, "bench")
        chunk = 2000
        last = 0
        for start in range(0, n, chunk):
            events = [
                WorkStateChanged(work="root.w", call="c", changes={"i": i})
                for i in range(start, min(n, start + chunk))
            ]
            last = (await bus.publish_many(run, events, "bench"))[-1]
        if prepublish:
            t0 = time.perf_counter()
            await recorder.start()
        ok = await recorder.wait_recorded(last, timeout=600)
        elapsed = time.perf_counter() - t0
        assert ok, "the recorder did not catch up"
        assert len(store.events(run)) == n + 1
        return (n + 1) / elapsed


@contextlib.asynccontextmanager
async def _world(db_url: str) -> AsyncIterator[tuple[EmbeddedNats, Bus, Any, Recorder]]:
    """A fresh nats-server, a connection, the SQL store and a recorder (not started)."""
    with tempfile.TemporaryDirectory() as d:
        server = EmbeddedNats.start(d)
        try:
            bus = await Bus.connect(server.url, server.token)
            await bus.ensure_streams()
            store = open_store(db_url)
            recorder = Recorder(bus, store)
            try:
                yield server, bus, store, recorder
            finally:
                await recorder.stop()
                await bus.close()
                store.close()
        finally:
            server.stop()


MODES = (
    ("works", "published by 2 Work processes and recorded"),
    ("catch-up", "recorder catching up"),
    ("one-process", "published and recorded in one process"),
)


async def _run(mode: str, db_url: str, a: argparse.Namespace) -> float:
    if mode == "works":
        return await measure_from_works(db_url, a.events, a.works)
    return await measure(db_url, a.events, prepublish=mode == "catch-up")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--works", type=int, default=2, help="publishing processes in the first figure")
    p.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = p.parse_args()
    for mode, label in MODES:
        with tempfile.TemporaryDirectory() as d:
            rate = asyncio.run(_run(mode, f"sqlite:///{d}/bench.db", a))
        print(f"durable events/s into SQLite, {label}: {rate:,.0f}  (target >= 20,000; {a.events} events)")
    # A fresh schema: a fresh JetStream numbers events from 1 again, which must not meet old rows.
    import secrets

    import psycopg

    schema = f"lkbench_{secrets.token_hex(4)}"
    with psycopg.connect(a.pg.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            for mode, label in MODES:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
                conn.execute(f"CREATE SCHEMA {schema}")
                rate = asyncio.run(_run(mode, f"{a.pg}?options=-csearch_path%3D{schema}", a))
                print(
                    f"durable events/s into PostgreSQL, {label}: {rate:,.0f}  (target >= 15,000; {a.events} events)"
                )
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
