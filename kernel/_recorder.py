"""The recorder: durable consumers that copy the streams into SQL.

Each batch of events, the runs rows and snapshots they imply, is one SQL transaction; the batch is
acknowledged (AckAll on its last message) only after the commit. A crash anywhere loses nothing
(unacknowledged messages come again) and duplicates nothing (the insert ignores known seqs and ids).
The runs table and the snapshots are projections written with their position, in the same
transaction as the events they come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from . import _projection as projection
from ._bus import Bus
from ._events import EVENT_STREAM, LOG_STREAM, decode_record
from ._pull import Raw, stream_seq
from ._records import Batch, EventRecord, LogLine, RunInfo, Snapshot
from ._store import EventStore, load_state

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 500
BATCH = 1000


class Recorder:
    def __init__(self, bus: Bus, store: EventStore, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.bus = bus
        self.store = store
        self.snapshot_every = snapshot_every
        self.recorded_seq = 0
        self._states: dict[str, projection.State] = {}
        self._since_snapshot: dict[str, int] = {}
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self.error: BaseException | None = None

    async def start(self) -> None:
        # The recorder's position is what SQL holds: it resumes right after the last committed event,
        # in the same transactions as its output, whatever state a crashed kernel left on the server.
        self.recorded_seq = await asyncio.to_thread(self.store.max_seq)

        async def events() -> Any:
            start = await asyncio.to_thread(self.store.max_seq)
            return await self.bus.durable(EVENT_STREAM, "lk-recorder", "lk.>", start_seq=start + 1)

        async def logs() -> Any:
            return await self.bus.durable(LOG_STREAM, "lk-log-recorder", "lklog.>")

        first_events, first_logs = await events(), await logs()
        self._tasks = [
            asyncio.create_task(
                self._consume(first_events, events, self._write_events), name="recorder-events"
            ),
            asyncio.create_task(self._consume(first_logs, logs, self._write_logs), name="recorder-logs"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def wait_recorded(self, seq: int, timeout: float = 30.0) -> bool:
        """Wait until every event up to ``seq`` is committed to SQL."""

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self.recorded_seq >= seq or self.error is not None)

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            return False
        return self.recorded_seq >= seq

    async def _consume(self, sub: Any, resubscribe: Any, write: Any) -> None:
        """Fetch, write, acknowledge; the next batch is fetched while the last one is written.

        A batch is acknowledged (AckAll) only after its commit, and batches commit in order. If a
        write fails, nothing after it is acknowledged: the consumer starts again from what SQL
        holds, so a failure can delay events but never skip them.
        """
        inflight: tuple[asyncio.Future[None], Any] | None = None
        while True:
            try:
                msgs = await sub.next(BATCH, timeout=0.2 if inflight else 5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection: nats-py reconnects; try again shortly
                log.debug("recorder fetch failed: %s", exc)
                await asyncio.sleep(0.2)
                continue
            if inflight is not None:
                task, last = inflight
                inflight = None
                try:
                    await task
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("recording failed, will retry: %s", exc)
                    self.error = exc
                    self._states.clear()
                    self._since_snapshot.clear()
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(Exception):
                        sub = await resubscribe()
                    continue  # what was fetched comes again from the new consumer
                self.error = None
                await sub.ack(last)
            if msgs:
                inflight = (asyncio.ensure_future(write(msgs)), msgs[-1][2])

    async def _write_events(self, msgs: list[Raw]) -> None:
        last = await asyncio.to_thread(self._decode_fold_and_write, msgs)
        async with self._progress:
            self.recorded_seq = max(self.recorded_seq, last)
            self._progress.notify_all()

    def _decode_fold_and_write(self, msgs: list[Raw]) -> int:
        records = [decode_record(data, stream_seq(reply)) for _, data, reply in msgs]
        self.store.write(self._fold_batch(records))
        return records[-1].seq

    def _fold_batch(self, records: list[EventRecord]) -> Batch:
        batch = Batch(events=records)
        touched: dict[str, projection.State] = {}
        for r in records:
            state = self._states.get(r.run_id)
            if state is None:
                state = load_state(self.store, r.run_id, upto_seq=r.seq - 1)
            if state and r.seq <= state["run"]["seq"]:
                continue  # already folded (a redelivery)
            state = projection.apply(state, r)
            self._states[r.run_id] = state
            if not state:
                continue
            touched[r.run_id] = state
            n = self._since_snapshot.get(r.run_id, 0) + 1
            if n >= self.snapshot_every or state["run"]["status"] in projection.RUN_ENDED:
                batch.snapshots.append(Snapshot(r.run_id, r.seq, state))
                n = 0
            self._since_snapshot[r.run_id] = n
        for run_id, state in touched.items():
            run = state["run"]
            batch.runs.append(
                RunInfo(
                    id=run_id,
                    name=run["name"],
                    app_file=run["app_file"],
                    status=run["status"],
                    created_at=run["created_at"],
                    updated_at=max(r.ts for r in records if r.run_id == run_id),
                    message=run["message"],
                    last_seq=run["seq"],
                )
            )
            if run["status"] in projection.RUN_ENDED:
                self._states.pop(run_id, None)
                self._since_snapshot.pop(run_id, None)
        return batch

    async def _write_logs(self, msgs: list[Raw]) -> None:
        lines = []
        for subject, data, reply in msgs:
            _, run_id, component = subject.split(".", 2)
            p = json.loads(data)
            lines.append(
                LogLine(
                    seq=stream_seq(reply),
                    run_id=run_id,
                    component=component.replace(":", "."),
                    ts=p["t"],
                    stream=p["s"],
                    line=p["l"],
                )
            )
        await asyncio.to_thread(self.store.write, Batch(logs=lines))
