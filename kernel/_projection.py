"""The projection: a run's state as a pure fold over its events.

``apply(state, record)`` has no clock, no I/O and no randomness, so the live loop, a restarted
kernel, ``state --at SEQ`` and a replay all compute the same state from the same events. It never
mutates its input: the parts an event touches are copied (the rest is shared), so a state handed out
stays valid. The state::

    {"run": {"id", "name", "app_file", "app", "code", "module", "entry", "status", "message", "seq",
             "stop_requested", "unreadable": [seq, ...]},
     "components": {name: {"kind": "flow"|"work", "vars": {...}, "spec": {...}}},
     "works": {name: {"status": {stage, timestamp, reason, message}, "last_index": n,
                      "calls": {call: {"index", "seq", "stage", "args", "kwargs", ...}},
                      "attempt": n, "fenced": n,
                      "worker": {"attempt", "executor", "ref", "state": "running"|"exited",
                                 "cause", "code", "signal", "message"} | None,
                        "interruptions": <workers of it that were preempted>}}}

A Work's status is the status of its newest call (highest index), so events of different Works,
and a status arriving after a newer request, fold to the same state in any interleaving.

Fencing: ``attempt`` is the newest worker started for the Work, ``fenced`` the newest one known to be
over. An event that a worker published (``attempt`` > 0) counts only if its attempt is the newest and
not over; the kernel's own events (``attempt`` 0) always count. An event the fold cannot read (a newer
version, a body that does not fit) changes nothing but ``run.unreadable``: the fold never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._codec import to_event
from ._events import (
    UNREADABLE,
    FlowStateChanged,
    RunCreated,
    RunEnded,
    RunInterrupted,
    RunResumed,
    RunStopRequested,
    WorkerExited,
    WorkerStarted,
    WorkRecord,
    WorkRunRequested,
    WorkStateChanged,
    WorkStatusChanged,
)
from ._records import EventRecord
from ._status import WorkStageStatus
from .errors import EventError

State = dict[str, Any]

FOLD_VERSION = 1
"""The version of this fold: bump it when a handler changes what state it computes, so that the
snapshots an older fold wrote are not loaded (the run is folded again from its events)."""

RUN_ACTIVE = "running"
RUN_INTERRUPTED = "interrupted"
RUN_ENDED = frozenset({"succeeded", "failed", "stopped"})


def empty() -> State:
    return {}


def fold(records: Iterable[EventRecord], state: State | None = None) -> State:
    s = state if state is not None else empty()
    for r in records:
        s = apply(s, r)
    return s


def apply(state: State, record: EventRecord) -> State:
    """The state after ``record``. Events of other runs and unknown-to-the-fold kinds change only ``seq``."""
    handler = _HANDLERS.get(record.type)
    if record.type == RunCreated.TYPE and not state:
        try:
            return _created(record)
        except EventError:
            return state
    if not state:
        return state
    try:
        if record.type == UNREADABLE:
            raise EventError(str(record.body.get("error", "unreadable")))
        new = dict(state) if handler is None or _stale(state, record) else handler(state, record)
    except EventError:
        new = _run_field(state, unreadable=[*state["run"].get("unreadable", []), record.seq])
    run = dict(new["run"])
    run["seq"] = record.seq
    new["run"] = run
    return new


_ATTEMPTED = frozenset({WorkStatusChanged.TYPE, WorkStateChanged.TYPE, WorkRecord.TYPE})


def _stale(state: State, record: EventRecord) -> bool:
    """Whether ``record`` comes from a worker attempt that is superseded or over (fenced)."""
    if record.type not in _ATTEMPTED:
        return False
    attempt = record.body.get("attempt", 0)
    if not isinstance(attempt, int) or attempt <= 0:
        return False
    work = state["works"].get(record.body.get("work"))
    if work is None:
        return False
    return attempt < work.get("attempt", 0) or attempt <= work.get("fenced", 0)


def new_attempt(state: State, work: str) -> int:
    """The number of the next worker of ``work``."""
    w = state["works"][work]
    return max(w.get("attempt", 0), w.get("fenced", 0)) + 1


def _created(record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, RunCreated)
    works = {
        name: {
            "status": {"stage": WorkStageStatus.NOT_STARTED},
            "last_index": 0,
            "calls": {},
            "attempt": 0,
            "fenced": 0,
            "worker": None,
        }
        for name, c in e.components.items()
        if c.get("kind") == "work"
    }
    return {
        "run": {
            "id": record.run_id,
            "name": e.name,
            "app_file": e.app_file,
            "app": e.app,
            "code": e.code,
            "module": e.module,
            "entry": e.entry,
            "status": RUN_ACTIVE,
            "message": "",
            "created_at": record.ts,
            "seq": record.seq,
            "stop_requested": False,
        },
        "components": e.components,
        "works": works,
    }


def _run_field(state: State, **changes: Any) -> State:
    new = dict(state)
    run = dict(state["run"])
    run.update(changes)
    new["run"] = run
    return new


def _ended(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, RunEnded)
    return _run_field(state, status=e.status, message=e.message)


def _interrupted(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, RunInterrupted)
    if state["run"]["status"] in RUN_ENDED:
        return dict(state)
    return _run_field(state, status=RUN_INTERRUPTED, message=e.reason)


def _resumed(state: State, record: EventRecord) -> State:
    return _run_field(state, status=RUN_ACTIVE, message="", stop_requested=False)


def _stop_requested(state: State, record: EventRecord) -> State:
    assert isinstance(to_event(record), RunStopRequested)
    return _run_field(state, stop_requested=True)


def _set_vars(state: State, changes: dict[str, dict[str, Any]]) -> State:
    new = dict(state)
    comps = dict(state["components"])
    for name, attrs in changes.items():
        comp = comps.get(name)
        if comp is None:
            continue
        comp = dict(comp)
        vars_ = dict(comp["vars"])
        vars_.update(attrs)
        comp["vars"] = vars_
        comps[name] = comp
    new["components"] = comps
    return new


def _flow_changed(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, FlowStateChanged)
    return _set_vars(state, e.changes)


def _work_changed(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, WorkStateChanged)
    return _set_vars(state, {e.work: e.changes})


def _with_work(state: State, name: str, update: Callable[[dict[str, Any]], None]) -> State:
    work = state["works"].get(name)
    if work is None:
        return dict(state)
    new = dict(state)
    works = dict(state["works"])
    w = dict(work)
    w["calls"] = dict(work["calls"])
    update(w)
    works[name] = w
    new["works"] = works
    return new


def _requested(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, WorkRunRequested)

    def update(w: dict[str, Any]) -> None:
        status = {"stage": WorkStageStatus.PENDING, "timestamp": record.ts, "reason": "", "message": ""}
        w["calls"][e.call] = {
            "index": e.index,
            "seq": record.seq,
            "args": e.args,
            "kwargs": e.kwargs,
            **status,
        }
        if e.index > w["last_index"]:
            w["last_index"] = e.index
            w["status"] = status

    return _with_work(state, e.work, update)


def _status(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, WorkStatusChanged)

    def update(w: dict[str, Any]) -> None:
        call = w["calls"].get(e.call)
        if call is None:
            return
        status = {"stage": e.stage, "timestamp": record.ts, "reason": e.reason, "message": e.message}
        w["calls"][e.call] = {**call, **status}
        if call["index"] == w["last_index"]:
            w["status"] = status

    return _with_work(state, e.work, update)


def _worker_started(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, WorkerStarted)

    def update(w: dict[str, Any]) -> None:
        if e.attempt <= w.get("fenced", 0) or e.attempt < w.get("attempt", 0):
            return  # a start recorded after its attempt was fenced or superseded
        w["attempt"] = e.attempt
        w["worker"] = {"attempt": e.attempt, "executor": e.executor, "ref": e.ref, "state": "running"}

    return _with_work(state, e.work, update)


def _worker_exited(state: State, record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, WorkerExited)

    def update(w: dict[str, Any]) -> None:
        if e.cause == "preempted" and e.attempt > w.get("fenced", 0):
            w["interruptions"] = w.get("interruptions", 0) + 1  # its node was taken away
        w["fenced"] = max(w.get("fenced", 0), e.attempt)
        worker = w.get("worker")
        if worker is not None and worker["attempt"] == e.attempt:
            w["worker"] = {
                **worker,
                "state": "exited",
                "cause": e.cause,
                "code": e.code,
                "signal": e.signal,
                "message": e.message,
            }

    return _with_work(state, e.work, update)


_HANDLERS: dict[str, Callable[[State, EventRecord], State]] = {
    WorkerStarted.TYPE: _worker_started,
    WorkerExited.TYPE: _worker_exited,
    RunEnded.TYPE: _ended,
    RunInterrupted.TYPE: _interrupted,
    RunResumed.TYPE: _resumed,
    RunStopRequested.TYPE: _stop_requested,
    FlowStateChanged.TYPE: _flow_changed,
    WorkStateChanged.TYPE: _work_changed,
    WorkRunRequested.TYPE: _requested,
    WorkStatusChanged.TYPE: _status,
}


def unfinished_calls(state: State, work: str) -> list[dict[str, Any]]:
    """The calls of ``work`` that were requested but did not finish, oldest first."""
    calls = state["works"][work]["calls"].items()
    live = [
        {"call_id": k, **c}
        for k, c in calls
        if c["stage"] in (WorkStageStatus.PENDING, WorkStageStatus.RUNNING)
    ]
    return sorted(live, key=lambda c: c["index"])


def component_tree(state: State, name: str = "root") -> dict[str, Any]:
    """The ``{"vars", "flows", "works"}`` view of ``name``'s subtree, as ``LightningFlow.state`` gives."""
    comps = state["components"]
    prefix = name + "."
    flows: dict[str, Any] = {}
    works: dict[str, Any] = {}
    for child, comp in comps.items():
        if not child.startswith(prefix) or "." in child[len(prefix) :]:
            continue
        key = child[len(prefix) :]
        if comp["kind"] == "work":
            works[key] = {"vars": comp["vars"], "status": state["works"][child]["status"]}
        else:
            flows[key] = component_tree(state, child)
    return {"vars": comps[name]["vars"], "flows": flows, "works": works}
