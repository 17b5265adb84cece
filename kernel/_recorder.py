"""The recorder: a database's durable consumers that copy the streams into SQL.

Each database has its own consumers (``lk-rec-<db id>``, ``lk-logrec-<db id>``), so kernels that share
a NATS but not a database never take each other's messages, and it records the runs it knows: those
whose ``run.created`` names it (or names no database) and those already in it. One kernel records into
a database at a time, under the lease ``recorder.<db id>``; another kernel on the same database stands
by and takes over when that lease lapses. The lease lives in NATS and the data in SQL, so the database
holds the fence (``Fence``): the row naming the recorder, set at take-over and checked in every batch's
transaction, so that a kernel frozen past its lease in the middle of a batch commits nothing after it
wakes up, and cannot keep its row locks (PostgreSQL ends its transaction) while the next one waits.

Each batch of events, the runs rows and snapshots they imply, and the recorder's position in the
stream is one SQL transaction; the batch is acknowledged (AckAll on its last message) only after the
commit. A crash anywhere loses nothing (unacknowledged messages come again, from the position SQL
holds) and duplicates nothing (the insert ignores known seqs and ids). A payload nobody can decode is
recorded as an ``event.unreadable`` row of its seq and reported, never retried for ever. A database
that keeps failing (unreachable, read-only, full) for ``FAIL_AFTER_S`` is a ``KernelFault``: the
kernel interrupts its runs with that cause and exits, and ``resume`` carries on once it is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

from . import _projection as projection
from ._binding import Start, start_of
from ._bus import Bus
from ._codec import read_record
from ._events import EVENT_STREAM, LOG_STREAM, UNREADABLE, RunCreated
from ._lease import Leases, recorder_key
from ._pull import Raw, stream_seq
from ._records import Batch, EventRecord, Fence, LogLine, RunInfo, Snapshot
from ._store import EventStore, load_state
from .errors import KernelFault, LeaseHeld, LeaseLost, RunNotFound, StreamMismatch

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 500
BATCH = 1000
FAIL_AFTER_S = float(os.environ.get("LK_RECORD_FAIL_AFTER_S", "3"))
"""Seconds a database may keep failing before the kernel gives up and interrupts its runs."""


def new_database_id() -> str:
    return secrets.token_hex(6)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def database_id(store: EventStore, hint: str | None = None) -> str:
    """The id of the database behind ``store``, made the first time any kernel opens it (``hint``:
    the id this kernel already named it by, for a database it found absent)."""
    return store.set_meta_once("db_id", hint or new_database_id())


class Recorder:
    def __init__(
        self,
        bus: Bus,
        store: EventStore,
        snapshot_every: int = SNAPSHOT_EVERY,
        *,
        leases: Leases | None = None,
        since: dict[str, int] | None = None,
        on_fatal: Callable[[KernelFault], None] | None = None,
        where: str = "",
        db_id: str | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.snapshot_every = snapshot_every
        self.leases = leases
        self.since = since or {}
        """Per stream, its last seq when this kernel connected: where a database new to it starts."""
        self.on_fatal = on_fatal
        self.where = where or f"database {getattr(store, 'url', store)!r}"
        self.db_id = ""
        self._hint = db_id
        self._mine: set[str] = set()
        """The ids by which this kernel's runs name this database (its id, and a hint that lost a race)."""
        self.recorded_seq = 0
        self.standby = False
        """True while another kernel records into this database (this one waits to take over)."""
        self.unreadable: list[int] = []
        self._states: dict[str, projection.State] = {}
        self._since_snapshot: dict[str, int] = {}
        self._known: dict[str, bool] = {}
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self.error: BaseException | None = None
        self._failing_since: float | None = None
        self._log_seq = 0

    async def start(self) -> None:
        """Check the streams against the database (``StreamMismatch`` when they do not belong
        together), then record, or stand by while another kernel records into this database."""
        self.db_id = await asyncio.to_thread(database_id, self.store, self._hint)
        self._mine = {self.db_id} | ({self._hint} if self._hint else set())
        await self._starts()  # refuse at once, whoever records, if the streams are not this database's
        if self.leases is not None:
            try:
                await self.leases.acquire(recorder_key(self.db_id), f"recording into {self.where}")
            except LeaseHeld:
                self.standby = True
                self._tasks = [asyncio.create_task(self._stand_by(), name="recorder-standby")]
                return
        await self._begin()

    async def _starts(self) -> dict[str, Start]:
        meta = await asyncio.to_thread(self.store.meta)
        maxima = {
            EVENT_STREAM: await asyncio.to_thread(self.store.max_seq),
            LOG_STREAM: await asyncio.to_thread(self.store.max_log_seq),
        }
        out = {}
        for name in (EVENT_STREAM, LOG_STREAM):
            state = await self.bus.stream_state(name)
            out[name] = start_of(state, meta, maxima[name], self.since.get(name), self.where)
        return out

    def _fence(self, take: bool = False) -> Fence | None:
        if self.leases is None:
            return None
        # Half the lease: a frozen kernel's locks are gone before its lease lapses and another takes over.
        return Fence(self.leases.holder.kernel, self.leases.ttl / 2, take)

    async def _begin(self) -> None:
        self.standby = False
        # The database names this kernel as its recorder first (waiting for a frozen one's batches to
        # end), and only then says from where it records: after any batch the last recorder committed.
        await asyncio.to_thread(self.store.write, Batch(fence=self._fence(take=True)))
        starts = await self._starts()
        meta = {k: v for s in starts.values() for k, v in s.meta.items()}
        await asyncio.to_thread(self.store.write, Batch(meta=meta, fence=self._fence()))
        ev, lg = starts[EVENT_STREAM], starts[LOG_STREAM]
        self.recorded_seq = ev.first_seq - 1
        self._log_seq = lg.first_seq - 1

        async def events() -> Any:
            return await self.bus.durable(EVENT_STREAM, f"lk-rec-{self.db_id}", "lk.>", self.recorded_seq + 1)

        async def logs() -> Any:
            return await self.bus.durable(LOG_STREAM, f"lk-logrec-{self.db_id}", "lklog.>", self._log_seq + 1)

        first_events, first_logs = await events(), await logs()
        self._tasks.extend(
            [
                asyncio.create_task(
                    self._consume(first_events, events, self._write_events), name="recorder-events"
                ),
                asyncio.create_task(self._consume(first_logs, logs, self._write_logs), name="recorder-logs"),
            ]
        )
        async with self._progress:
            self._progress.notify_all()

    async def _stand_by(self) -> None:
        assert self.leases is not None
        while True:
            await asyncio.sleep(self.leases.ttl / 3)
            # Another kernel records: its progress is what SQL holds.
            meta = await asyncio.to_thread(self.store.meta)
            async with self._progress:
                self.recorded_seq = max(self.recorded_seq, int(meta.get("position", 0)))
                self._progress.notify_all()
            try:
                await self.leases.acquire(recorder_key(self.db_id), f"recording into {self.where}")
            except LeaseHeld:
                continue
            try:
                await self._begin()
            except StreamMismatch as exc:
                if self.on_fatal is not None:
                    self.on_fatal(KernelFault(str(exc)))
                return
            except Exception as exc:  # the database is down, or slow to let go: next round
                log.warning("taking over recording into %s failed, retrying: %s", self.where, exc)
                self.standby = True
                continue
            log.info("took over recording into %s", self.where)
            return

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self.leases is not None and self.db_id:
            await self.leases.release(recorder_key(self.db_id))

    @property
    def failing(self) -> bool:
        """The database refuses writes now (retried until ``FAIL_AFTER_S``, then ``error``)."""
        return self._failing_since is not None or self.error is not None

    async def wait_recorded(self, seq: int, timeout: float = 30.0, unless_failing: bool = False) -> bool:
        """Wait until every event up to ``seq`` is committed to SQL (by this kernel, or by the one that
        records into this database while this one stands by); ``unless_failing``: not while the
        database refuses writes (a kernel stopping leaves them in NATS for the next one)."""

        def done() -> bool:
            return self.recorded_seq >= seq or self.error is not None or (unless_failing and self.failing)

        async def reached() -> None:
            async with self._progress:
                while not done():
                    if self.standby:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._progress.wait(), 0.05)
                        position = int((await asyncio.to_thread(self.store.meta)).get("position", 0))
                        self.recorded_seq = max(self.recorded_seq, position)
                    else:
                        await self._progress.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            return False
        return self.recorded_seq >= seq

    async def wait_logs_recorded(self, seq: int, timeout: float = 30.0, unless_failing: bool = False) -> bool:
        """Wait until every log line up to the log stream's ``seq`` is committed (or skipped)."""

        def done() -> bool:
            return self._log_seq >= seq or self.error is not None or (unless_failing and self.failing)

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(done)

        if self.standby:
            return True  # the recording kernel records them
        try:
            await asyncio.wait_for(reached(), timeout)
        except asyncio.TimeoutError:
            return False
        return self._log_seq >= seq

    async def _consume(self, sub: Any, resubscribe: Any, write: Any) -> None:
        """Fetch, write, acknowledge; the next batch is fetched while the last one is written.

        A batch is acknowledged (AckAll) only after its commit, and batches commit in order. If a
        write fails, nothing after it is acknowledged: the consumer starts again from what SQL
        holds, so a failure can delay events but never skip them; one that lasts is a fault.
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
            if not msgs and inflight is None and getattr(sub, "gone", False):
                # Its durable consumer was deleted under it: make it again from what SQL holds,
                # unless another kernel may record now (it made the consumer its own).
                if not self._holds_lease():
                    self._lost(
                        LeaseLost(f"the consumer of {self.where} was deleted, and this kernel's lease lapsed")
                    )
                    return
                log.warning("the recorder's consumer for %s was deleted; making it again", self.where)
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                with contextlib.suppress(Exception):
                    sub = await resubscribe()
                continue
            if inflight is not None:
                task, last = inflight
                inflight = None
                try:
                    await task
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if isinstance(exc, LeaseLost) or not self._holds_lease():
                        # Another kernel may record now, through the same durable consumers:
                        # re-creating one (from this kernel's older position) would take it from
                        # under that kernel. Stand by instead, and take over again if it is free.
                        self._lost(exc)
                        return
                    self._failed(exc)
                    async with self._progress:
                        self._progress.notify_all()  # whoever waits for a seq learns of the failure
                    await asyncio.sleep(0.5)
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                    with contextlib.suppress(Exception):
                        sub = await resubscribe()
                    continue  # what was fetched comes again from the new consumer
                self.error = None
                self._failing_since = None
                await sub.ack(last)
            if msgs:
                task = asyncio.ensure_future(write(msgs))
                # Awaited above, unless the recorder stops first: then its failure is not news.
                task.add_done_callback(_retrieved)
                inflight = (task, msgs[-1][2])

    def _holds_lease(self) -> bool:
        return self.leases is None or not self.db_id or self.leases.fresh(recorder_key(self.db_id))

    def _lost(self, exc: BaseException) -> None:
        """This kernel may no longer record into the database: its consumers stop, and it stands by."""
        if self.standby:
            return
        log.warning("recording into %s stops (%s); standing by", self.where, exc)
        self.standby = True
        self._states.clear()
        self._since_snapshot.clear()
        self._known.clear()
        current = asyncio.current_task()
        for t in self._tasks:
            if t is not current:
                t.cancel()
        self._tasks = [asyncio.create_task(self._stand_by(), name="recorder-standby")]
        self._tell_waiters()  # waiters for a seq now read the database's position

    def _tell_waiters(self) -> None:
        async def tell() -> None:
            async with self._progress:
                self._progress.notify_all()

        task = asyncio.ensure_future(tell())
        task.add_done_callback(_retrieved)

    def _failed(self, exc: BaseException) -> None:
        self._states.clear()
        self._since_snapshot.clear()
        self._known.clear()
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("recording into %s failed, retrying: %s", self.where, exc)
            self._tell_waiters()
        if now - self._failing_since >= FAIL_AFTER_S and self.error is None:
            self.error = exc
            fault = KernelFault(f"cannot record into {self.where}: {exc}")
            if self.on_fatal is not None:
                self.on_fatal(fault)

    async def _write_events(self, msgs: list[Raw]) -> None:
        self._check_lease()
        last = await asyncio.to_thread(self._decode_fold_and_write, msgs)
        async with self._progress:
            self.recorded_seq = max(self.recorded_seq, last)
            self._progress.notify_all()

    def _check_lease(self) -> None:
        """Refuse to write once this kernel's recorder lease may have lapsed: another kernel may
        record into the database by now (the write fails, and is retried until the lease is renewed
        or known lost)."""
        if self.leases is not None and self.db_id and not self.leases.fresh(recorder_key(self.db_id)):
            raise LeaseLost(f"this kernel's lease on recording into {self.where} may have lapsed")

    def _decode_fold_and_write(self, msgs: list[Raw]) -> int:
        records = [read_record(subject, data, stream_seq(reply)) for subject, data, reply in msgs]
        mine = [r for r in records if self._knows(r)]
        batch = self._fold_batch(mine)
        batch.meta["position"] = str(records[-1].seq)
        batch.fence = self._fence()
        self.store.write(batch)
        for r in mine:
            if r.type == UNREADABLE:
                self.unreadable.append(r.seq)
                log.warning(
                    "event %s of run %s is unreadable: %s", r.seq, r.run_id or "?", r.body.get("error")
                )
        return records[-1].seq

    def _knows(self, r: EventRecord) -> bool:
        """Whether this database records ``r``'s run: created for it (or for no database in
        particular), or already in it."""
        known = self._known.get(r.run_id)
        if known is None:
            if r.type == RunCreated.TYPE:
                db = r.body.get("db", "")
                known = not db or db in self._mine
            else:
                try:
                    self.store.run(r.run_id)
                    known = True
                except RunNotFound:
                    known = r.type == UNREADABLE  # kept, to be reported, whatever run it claims
                    if known:
                        return True
            self._known[r.run_id] = known
        return known

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
                batch.snapshots.append(Snapshot(r.run_id, r.seq, state, projection.FOLD_VERSION))
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
                    events=int(run.get("events", 0)),
                )
            )
            if run["status"] in projection.RUN_ENDED:
                self._states.pop(run_id, None)
                self._since_snapshot.pop(run_id, None)
        return batch

    async def _write_logs(self, msgs: list[Raw]) -> None:
        self._check_lease()
        lines = []
        for subject, data, reply in msgs:
            seq = stream_seq(reply)
            try:
                _, run_id, component = subject.split(".", 2)
                p = json.loads(data)
                line = LogLine(
                    seq=seq,
                    run_id=run_id,
                    component=component.replace(":", "."),
                    ts=float(p["t"]),
                    stream=str(p["s"]),
                    line=str(p["l"]),
                )
            except (ValueError, KeyError, TypeError):
                log.warning("log line %s on %s is unreadable; skipped", seq, subject)
                continue
            if self._known.get(run_id, True):
                lines.append(line)
        last = stream_seq(msgs[-1][2])
        await asyncio.to_thread(
            self.store.write, Batch(logs=lines, meta={"log_position": str(last)}, fence=self._fence())
        )
        async with self._progress:
            self._log_seq = max(self._log_seq, last)
            self._progress.notify_all()
