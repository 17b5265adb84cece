"""``lightning-kernel fork RUN --at SEQ [--app FILE]``: a new run whose history begins as RUN's up to SEQ.

The fork's log opens with copies of RUN's events up to SEQ (new ids, new seqs from the stream,
``input_seq`` mapped onto the copies' seqs, the producers' timestamps kept), then ``run.forked
{origin, at}``; from there it goes on live, as a resumed run does (``Kernel.fork_run``). So the fork is
a plain run: ``history``, ``state --at``, ``resume``, ``replay`` and a fork of the fork read it with
no knowledge of forks. What the copies say holds: a call that had succeeded by SEQ is succeeded in the
fork and never runs again; one that was pending or running runs again, as on ``resume``.

- ``--app FILE``: the copy of ``run.created`` names the fixed flow's pickled app and code artifact
  (and its components, so attributes it added start at their defaults): the user fixes the bug and
  carries on from SEQ instead of from the start.
- Workers: one the log says was alive at SEQ is the origin's, and may still run for it. The fork
  fences it (``work.worker_exited cause=lost``) before anything else, so it is never re-attached.
- Paths: a Work finds its persisted Paths by ``paths/<run>/<work>/<path>`` pointers in the artifact
  store. The fork gets its own, written from the newest ``path.persisted`` record of each Path up to
  SEQ: they name the same content-addressed manifests and objects, so nothing is copied, and the
  files are those of SEQ even when the origin persisted newer ones later. Drives are shared by name
  across runs: a fork sees a Drive as it is now.

Tried first: a fork as a link to its origin's events (no copies). Every reader (the store's queries,
the recorder's run rows, the workers reading their command subjects from a seq) would have had to
follow the link; copies cost one event per origin event and keep each run one self-contained log.
The copy of ``run.created`` is stamped with the fork's own time: a run's creation is its birth, by
which ``runs`` and ``latest`` order runs. Events this kernel cannot read (``event.unreadable``, a
newer version) are not copied; ``run.forked`` lists their seqs (the fold had ignored them too).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import os
from typing import Any

from . import _json
from . import _projection as projection
from ._bus import Bus
from ._codec import encode, to_event
from ._config import Config
from ._datadir import EarlyStart
from ._diff import PERSISTED
from ._events import Event, RunCreated, RunEnded, WorkerExited, WorkRecord, WorkStatusChanged
from ._loop import resumable
from ._records import EventRecord, RunInfo
from ._status import WorkStageStatus
from ._store import EventStore
from .errors import EventError, ForkError


def history_at(store: EventStore, info: RunInfo, at: int) -> tuple[list[EventRecord], projection.State]:
    """``(events, state)`` of run ``info`` up to its event ``at``; ``ForkError`` naming what is wrong
    when ``at`` is not one of its events, or the run had ended by then."""
    run = info.id
    first = store.events(run, limit=1)
    begins = first[0].seq if first else 0
    listed = f"`lightning-kernel history {run}` lists its events"
    if at <= 0:
        raise ForkError(
            run,
            at,
            f"fork --at {at}: a fork starts as run {run}'s events up to seq {at}, and there are none; its "
            f"first event is seq {begins} (fork --at {begins} starts it over)",
        )
    if at > info.last_seq:
        raise ForkError(
            run, at, f"fork --at {at} is past run {run}'s last event (seq {info.last_seq}); {listed}"
        )
    records = store.events(run, upto_seq=at)
    if not records:
        raise ForkError(
            run, at, f"fork --at {at} comes before run {run}'s first event (seq {begins}); {listed}"
        )
    if records[-1].seq != at:
        after = store.events(run, after_seq=at, limit=1)
        near = f"seq {records[-1].seq}" + (f" and seq {after[0].seq}" if after else "")
        raise ForkError(
            run,
            at,
            f"seq {at} is not an event of run {run} (sequence numbers are shared by all runs): its "
            f"nearest events are {near}; {listed}",
        )
    state = projection.fold(records)
    if not state or records[0].type != RunCreated.TYPE:
        raise ForkError(
            run, at, f"run {run} has no readable run.created event up to seq {at}: it cannot be forked"
        )
    status = state["run"]["status"]
    if status in projection.RUN_ENDED:
        end = next(r for r in reversed(records) if r.type == RunEnded.TYPE)
        hint = f", e.g. seq {end.input_seq}, the state its last iteration ran on" if end.input_seq else ""
        raise ForkError(
            run,
            at,
            f"run {run} had ended ({status}) by seq {at}, at its run.ended (seq {end.seq}): a fork from "
            f"there has nothing left to run; fork at an earlier seq{hint}",
        )
    return records, state


def created(
    record: EventRecord,
    db: str,
    app: tuple[str, str, dict[str, Any], Any] | None = None,
) -> RunCreated:
    """The fork's ``run.created``: the origin's, recorded by this database; with ``app`` ``(app
    file, pickled app ref, components, Code)``, the fixed flow's."""
    origin = to_event(record)
    assert isinstance(origin, RunCreated)
    if app is None:
        return dataclasses.replace(origin, db=db)
    app_file, ref, components, code = app
    return dataclasses.replace(
        origin,
        app_file=os.path.abspath(app_file),
        app=ref,
        components=components,
        code=code.ref if code else "",
        module=code.module if code else "",
        entry=code.entry if code else "",
        db=db,
    )


def _restamped(data: bytes, ts: float) -> bytes:
    payload = _json.loads(data)
    payload["ts"] = ts
    return _json.dumps_strict(payload)


async def copy_events(bus: Bus, fork: str, records: list[EventRecord], first: RunCreated) -> list[int]:
    """Publish copies of ``records`` as run ``fork``'s events (``first`` for its ``run.created``), in
    order; returns the origin seqs not copied. A copy's ``input_seq`` is the seq of the copy of the
    event it named (or of the newest copied one before it), so sends are awaited only when a later
    event needs an earlier one's seq."""
    copied: list[int] = []
    new_seq: dict[int, int] = {}
    sent: collections.deque[tuple[int, asyncio.Future[int]]] = collections.deque()
    skipped: list[int] = []

    async def settle(upto: int) -> None:
        while sent and sent[0][0] <= upto:
            seq, future = sent.popleft()
            new_seq[seq] = await future

    for r in records:
        event: Event
        if not copied:
            event = first
        else:
            try:
                event = to_event(r)
            except EventError:
                skipped.append(r.seq)
                continue
        input_seq = 0
        if r.input_seq:
            i = bisect.bisect_right(copied, r.input_seq) - 1
            if i >= 0:
                await settle(copied[i])
                input_seq = new_seq[copied[i]]
        subject, event_id, data = encode(event, fork, r.source, input_seq=input_seq)
        if copied:  # the copy of run.created keeps its new time: the fork's birth
            data = _restamped(data, r.ts)
        sent.append((r.seq, await bus.send(subject, event_id, data)))
        copied.append(r.seq)
    await settle(records[-1].seq)
    return skipped


def write_pointers(artifacts: Any, fork: str, records: list[EventRecord]) -> int:
    """Point the fork's Paths at what their Works had persisted by the last of ``records``; returns
    how many pointers were written."""
    from lightning_kernel.storage._context import pointer_key  # type: ignore[import-not-found,unused-ignore]

    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        if r.type == WorkRecord.TYPE and r.body.get("kind") == PERSISTED:
            data = r.body.get("data") or {}
            if isinstance(data.get("work"), str) and isinstance(data.get("path"), str):
                newest[(data["work"], data["path"])] = data
    for (work, lit), data in newest.items():
        artifacts.write_json(pointer_key(fork, work, lit), {**data, "run": fork})
    return len(newest)


def fences(state: projection.State, origin: str, at: int) -> list[Event]:
    """``worker_exited`` for each worker the origin's log says was alive at ``at``: it is the
    origin's, and the fork must never re-attach it."""
    return [
        WorkerExited(
            work=name,
            attempt=int(w["worker"]["attempt"]),
            cause="lost",
            message=f"a worker of run {origin}, alive at seq {at}: the fork never attaches to it; fenced",
        )
        for name, w in sorted(state["works"].items())
        if w.get("worker") and w["worker"].get("state") == "running"
    ]


def restart_events(state: projection.State) -> list[Event]:
    """The calls that stopped without being asked to (an interruption) go back to pending: a resumed
    or forked run runs them again, as it does those still pending or running."""
    events: list[Event] = []
    for work, w in state["works"].items():
        for call_id, call in sorted(w["calls"].items(), key=lambda kv: kv[1]["index"]):
            if call["stage"] == WorkStageStatus.STOPPED and resumable(call):
                events.append(
                    WorkStatusChanged(
                        work=work, call=call_id, stage=WorkStageStatus.PENDING, reason="resumed"
                    )
                )
    return events


def fork_embedded(
    config: Config, run_id: str, at: int, app_file: str | None = None, early: EarlyStart | None = None
) -> int:
    """``fork``: make the fork and run it in the foreground, as ``resume`` does (same exit codes); the
    new run's id is the first line on stdout."""
    import sys

    from ._embedded import _host, _say
    from ._kernel import Kernel

    kernel = Kernel(config, early)

    async def make() -> Any:
        await kernel.started()
        await kernel.caught_up()
        assert kernel.store is not None
        origin = kernel.store.run(run_id).id
        driver = await kernel.fork_run(origin, at, app_file)
        print(driver.run_id, flush=True)
        fixed = f", running {app_file}" if app_file else ""
        _say(f"run {driver.run_id}: a fork of run {origin} at seq {at}{fixed}")
        sys.stdout.flush()
        return driver

    return asyncio.run(_host(kernel, make))
