"""The flow loop of one run: the projection, the live objects, and the side effects.

It wakes when events arrive (there is no tick), folds them into the state, has the supervisor
start or watch workers as they ask, and runs an iteration of the flow (``_iteration``: hydrate,
``root.run()``, diff; the replayer runs the same code). What an iteration did (state changes, run
requests, stop, fail) leaves as events stamped with its ``input_seq``, the seq of the state it ran
on; the loop applies
its own events only when they come back from the stream, so its state is always the fold of the
stream in order, exactly what a replay computes.

The user's flow code runs on the event loop, as in Lightning App's loop: handing each iteration to
a thread of its own was measured to add ~1 ms to the lag from a Work's change to the flow seeing it
(p50 2.0-2.2 ms inline, 2.8-3.4 ms on a thread, ``bench/kernel_latency.py --only lag``, same runs).
A ``root.run()`` that blocks holds up the recorder and the API meanwhile (JetStream keeps the events),
but not the run's lease, which is renewed on a thread and connection of its own (``_lease``), nor
SIGTERM, whose handler interrupts the flow's code (``FlowInterrupted``; the iteration is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from typing import Any

from . import _projection as projection
from . import _schedule as schedules
from ._app import LightningApp
from ._bus import Bus
from ._clock import Clock, clock_from_env
from ._dispatch import USER_STOP
from ._events import (
    PERSIST_ANSWERED,
    ComponentAdded,
    Event,
    FlowRequestAnswered,
    FlowRequestReceived,
    PathPersistRequested,
    RunCreated,
    RunEnded,
    RunInterrupted,
    RunResumed,
    RunStopRequested,
    WorkEndpoint,
    WorkRecord,
    WorkRunRequested,
    WorkStateChanged,
    WorkStatusChanged,
    WorkStopRequested,
)
from ._iteration import FlowInterrupted, FlowIteration
from ._records import EventRecord
from ._status import WorkStageStatus
from ._supervisor import SpecFactory, Supervisor
from .errors import KernelError

log = logging.getLogger(__name__)
KERNEL = "kernel"


def resumable(call: dict[str, Any]) -> bool:
    stage = call["stage"]
    return stage in (WorkStageStatus.PENDING, WorkStageStatus.RUNNING) or (
        stage == WorkStageStatus.STOPPED and call.get("reason") != USER_STOP
    )


class RunDriver:
    """Hosts one run in this kernel."""

    def __init__(
        self,
        run_id: str,
        app: LightningApp,
        bus: Bus,
        executors: Any,
        worker_spec: SpecFactory,
        default_executor: str = "local",
        echo: bool = True,
        artifacts: Any = None,
        clock: Clock | None = None,
    ) -> None:
        self.run_id = run_id
        self.app = app
        self.bus = bus
        self.echo = echo
        self.state: projection.State = projection.empty()
        self.supervisor = Supervisor(
            run_id,
            app.works,
            executors,
            default_executor,
            worker_spec,
            self._publish,
            lambda: self.state,
            self._caught_up,
        )
        self._folded = asyncio.Condition()
        self.ended = asyncio.Event()
        self._inbox: list[EventRecord] = []
        self._wake = asyncio.Event()
        self._awaiting = 0
        self._outbox: list[Event] = []
        self._sub: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending = False
        self.iterations = 0
        self.first_iteration_at: float | None = None
        self.failure: str = ""
        self._fault: KernelError | None = None
        self.held = False
        """Set by ``hold()``: no more iterations."""
        self.clock: Clock = clock if clock is not None else clock_from_env(os.environ)
        """What schedules are timed by (``LK_CLOCK``: a fake one for tests)."""
        self._sent: dict[tuple[str, str], float] = {}
        """The starts and ticks of schedules this loop published, by (flow, key) (``schedules.plan``)."""
        self._next_tick: float | None = None
        """The clock time of the earliest next tick of the run's schedules, None when it has none."""
        self._changed = False
        """Whether an event the flow can see was folded since the last iteration."""
        self.aborted: asyncio.Future[KernelError] = asyncio.get_event_loop().create_future()
        """Resolved with the fault when the kernel must stop driving this run at once."""
        self.artifacts = artifacts
        self.flow = FlowIteration(
            app,
            limit=lambda: int(self.bus.nc.max_payload),
            on_line=lambda line: self.log_line("root", "stdout", line),
            echo=echo,
            restore_from=artifacts.get_bytes if artifacts is not None else None,
        )

    @property
    def in_flow(self) -> bool:
        """True while ``root.run()`` runs (a signal handler may then interrupt it)."""
        return self.flow.in_flow

    @property
    def handles(self) -> dict[str, Any]:
        return self.supervisor.handles

    # -- event intake -------------------------------------------------------------------------------

    async def follow(self, start_seq: int) -> None:
        self._sub = await self.bus.follow(f"lk.{self.run_id}.>", start_seq, self._receive)

    def _receive(self, record: EventRecord) -> None:
        self._inbox.append(record)
        self._wake.set()

    def log_line(self, component: str, stream: str, line: str) -> None:
        import json

        data = json.dumps({"t": time.time(), "s": stream, "l": line}).encode()
        self._spawn(self.bus.publish_log(self.run_id, component, data))

    async def _caught_up(self, subject: str) -> None:
        """Return once the state holds the newest event on ``subject`` (of this run) in the stream."""
        last = await self.bus.last_seq_of(subject)
        async with self._folded:
            await self._folded.wait_for(lambda: bool(self.state) and self.state["run"]["seq"] >= last)

    def abort(self, fault: KernelError) -> None:
        """Make ``run()`` raise ``fault`` at once (NATS lost, the database failing, the lease lost)."""
        self._fault = fault
        self._ending = True
        self.supervisor.ending = True
        if not self.aborted.done():
            self.aborted.set_result(fault)
        self._wake.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the loop -----------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run until the run ends; returns its final status."""
        while True:
            timeout = self._timer()
            if timeout is not None:
                # Not asyncio.wait_for: on Python 3.10/3.11 it drops a cancel that comes as the
                # wait ends (an event woke it), and the run went on after a SIGTERM (gh-86296).
                waiter = asyncio.ensure_future(self._wake.wait())
                timer = asyncio.ensure_future(self.clock.wait_until(self.clock.now() + timeout))
                try:
                    await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    timer.cancel()
            else:
                await self._wake.wait()
            self._wake.clear()
            if self._fault is not None:
                raise self._fault
            records, self._inbox = self._inbox, []
            last = len(records) - 1
            for i, record in enumerate(records):
                self.state = projection.apply(self.state, record)
                if record.type not in schedules.BOOKKEEPING:
                    self._changed = True
                await self._react(record)
                if i < last and record.type == WorkStateChanged.TYPE and self._may_iterate():
                    # Several changes arrived at once: the flow sees each, as if they came one by one.
                    await self._iterate()
            if records:
                async with self._folded:
                    self._folded.notify_all()
            if not self.state:
                continue
            run = self.state["run"]
            if run["status"] in projection.RUN_ENDED:
                await self.supervisor.shutdown()
                return str(run["status"])
            await self._tick()
            if self._changed and self._may_iterate():
                await self._iterate()

    def _timer(self) -> float | None:
        """Seconds (on ``self.clock``) until the loop must wake with no event: the next tick of the
        run's schedules; None for never: as in Lightning App, ``root.run()`` runs again only when
        something changed (an event the flow can see, a tick)."""
        if self._next_tick is None:
            return None
        return max(0.0, self._next_tick - self.clock.now())

    async def _tick(self) -> None:
        """Publish what the run's schedules need now (a start, the ticks whose time came: one per
        schedule however many passed), and note when the next one comes. Only the loop reads the
        clock: the fold and the flow read the ticks it recorded."""
        if not self.state.get("schedules") or self._ending or self.held:
            self._next_tick = None
            return
        if self.state["run"]["status"] != projection.RUN_ACTIVE:
            self._next_tick = None
            return
        events, self._next_tick = schedules.plan(self.state, self.clock.now(), self._sent)
        await self._publish(events)

    def _may_iterate(self) -> bool:
        """Whether ``root.run()`` may run on the state as folded so far: the run is active, not ending,
        and every event of the last iteration is back (its own changes are in the state)."""
        if not self.state:
            return False
        run = self.state["run"]
        return (
            run["status"] == projection.RUN_ACTIVE
            and not self._ending
            and not self.held
            and run["seq"] >= self._awaiting
        )

    def hold(self) -> None:
        """Run the flow no more: a stop is on its way (a signal interrupted the flow, and the loop
        must get to the stop before the next iteration blocks it again)."""
        self.held = True

    async def _publish(self, events: list[Event], input_seq: int = 0) -> None:
        if events:
            seqs = await self.bus.publish_many(self.run_id, events, KERNEL, input_seq)
            self._awaiting = max(self._awaiting, seqs[-1])

    async def _iterate(self) -> None:
        self._outbox = []
        self._changed = False
        input_seq = int(self.state["run"]["seq"])
        now = self.clock.now()  # when the flow hit the schedules it registers (LA: datetime.now())
        end, events, blobs = self._run_flow()
        if blobs:
            try:
                await self._store_blobs(blobs)
            except Exception as exc:
                events, end = (
                    [],
                    RunEnded(status="failed", message=f"storing the flow's new components failed: {exc}"),
                )
                self.failure = end.message
        await self._publish(events, input_seq)
        if end is not None:
            await self._end(end, input_seq)
        else:
            await self._publish(schedules.starts(events, now, self._sent))

    def _run_flow(self) -> tuple[RunEnded | None, list[Event], dict[str, bytes]]:
        """One iteration of the user's flow (``_iteration``), timed and counted."""
        if self.first_iteration_at is None:
            self.first_iteration_at = time.time()
        self.iterations += 1
        outcome = self.flow.run(self.state)
        end = outcome.end
        if end is not None and end.status == "failed":
            self.failure = end.message
        return end, outcome.events, outcome.blobs

    async def _store_blobs(self, blobs: dict[str, bytes]) -> None:
        """The pickles of the components the flow added: in the store before the events name them."""
        if self.artifacts is None:
            raise KernelError("this loop has no artifact store to keep the components the flow adds")
        for blob in blobs.values():
            await asyncio.to_thread(self.artifacts.put_bytes, blob)

    async def _end(self, end: RunEnded, input_seq: int = 0) -> None:
        """End the run: stop the Works first (they record why), so ``run.ended`` is the last event.
        ``input_seq``: the end is the flow's (``self.stop()``, an exception), from that iteration."""
        self._ending = True
        await self.supervisor.shutdown()
        await self._publish([end], input_seq)

    # -- side effects of events -----------------------------------------------------------------------

    async def _react(self, record: EventRecord) -> None:
        t = record.type
        sup = self.supervisor
        if t == RunCreated.TYPE or t == RunResumed.TYPE:
            self.flow.restore(self.state)  # the Works the flow added, before a resume goes on
            for name, work in list(self.app.works.items()):
                unfinished = projection.unfinished_calls(self.state, name)
                if unfinished:
                    # A resumed Work takes its commands again from its oldest unfinished call, and
                    # carries on from the state it last recorded.
                    vars_ = self.state["components"][name]["vars"]
                    sup.ensure(name, min(c["seq"] for c in unfinished), vars_)
                elif work.start_with_flow:
                    sup.ensure(name, record.seq)
        elif t == WorkRunRequested.TYPE:
            sup.ensure(record.body["work"], record.seq)
        elif t == ComponentAdded.TYPE and record.body.get("kind") == "work":
            added = self.app.works.get(record.body["name"])
            if added is not None and added.start_with_flow:
                sup.ensure(record.body["name"], record.seq)
        elif t == WorkStatusChanged.TYPE:
            body = record.body
            if body["stage"] == WorkStageStatus.FAILED and not self._ending:
                failed = self.app.works.get(body["work"])
                if failed is not None and failed.raise_exception:
                    msg = body.get("message") or body.get("reason", "")
                    self.failure = f"{body['work']} failed: {msg}"
                    self._spawn(self._end(RunEnded(status="failed", message=self.failure)))
                    self._ending = True
        elif t == WorkStopRequested.TYPE:
            if record.body["work"] in sup.handles:
                self._spawn(sup.stop(record.body["work"]))
        elif t == PathPersistRequested.TYPE:
            origin = record.body["work"]
            if not sup.alive(origin) and not sup.starting(origin):
                # No worker to persist anything: what the origin persisted last stands.
                data = {
                    "request": record.body["request"],
                    "path": record.body["path"],
                    "persisted": False,
                    "reason": f"{origin} is not running",
                }
                self._spawn(self._publish([WorkRecord(work=origin, kind=PERSIST_ANSWERED, data=data)]))
        elif t == WorkEndpoint.TYPE and record.body.get("listening") and self.echo:
            print(f"{record.body['work']} serves at {record.body['url']}", file=sys.stderr, flush=True)
        elif t == RunStopRequested.TYPE and not self._ending:
            self._ending = True
            self._spawn(self._end(RunEnded(status="stopped", message=record.body.get("reason", ""))))
        elif t == FlowRequestReceived.TYPE:
            await self._answer_request(record)

    async def _answer_request(self, record: EventRecord) -> None:
        """A request for the flow's API or a command (``_requests``): its handler runs now, on the
        state at the request, and what it did is published stamped with the request's seq, so the
        next ``root.run()`` (once those events are back) sees its changes."""
        from ._requests import answer

        run = self.state["run"] if self.state else {}
        if run.get("status") != projection.RUN_ACTIVE or self._ending or self.held:
            why = f"run {self.run_id} is {'stopping' if run.get('status') == projection.RUN_ACTIVE else run.get('status')}"
            refused = FlowRequestAnswered(id=str(record.body.get("id", "")), status=503, response=why)
            with contextlib.suppress(Exception):
                await self._publish([refused])  # no input_seq: the flow took no part in it
            return
        got = answer(self.flow, self.state, record)
        events, end = got.events, got.end
        if got.blobs:
            try:
                await self._store_blobs(got.blobs)
            except Exception as exc:
                why = f"storing what the handler made failed: {exc}"
                events = [FlowRequestAnswered(id=str(record.body.get("id", "")), status=500, response=why)]
                end = None
        await self._publish(events, record.seq)
        if end is not None:
            await self._end(end, record.seq)

    async def interrupt(self, reason: str, publish: bool = True) -> None:
        """Stop hosting the run without ending it (Ctrl-C, SIGTERM, a fault): Works stop and record why.
        ``publish=False`` when NATS is gone and the interruption cannot be recorded."""
        self._ending = True
        await self.supervisor.shutdown()
        # Not only an active state: a resumed (or forked) run whose run.resumed is not folded yet
        # still reads "interrupted", and must be recorded interrupted again, not left running.
        if publish and self.state and self.state["run"]["status"] not in projection.RUN_ENDED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publish([RunInterrupted(reason=reason)]), 5)

    async def close(self) -> None:
        # No worker may outlive its kernel: multiprocessing joins live children at exit, and a
        # worker waiting for commands never ends by itself.
        self._ending = True
        with contextlib.suppress(Exception):
            await self.supervisor.shutdown()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        for t in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 1.0)


__all__ = ["FlowInterrupted", "RunDriver", "resumable"]
