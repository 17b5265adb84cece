"""The projection: a run's state as a pure fold over its events.

``apply(state, record)`` has no clock, no I/O and no randomness, so the live loop, a restarted
kernel, ``state --at SEQ`` and a replay all compute the same state from the same events. It never
mutates its input: the parts an event touches are copied (the rest is shared), so a state handed out
stays valid. The state::

    {"run": {"id", "name", "app_file", "app", "code", "module", "entry", "status", "message", "seq",
             "events" (how many of the run's events are folded), "stop_requested", "unreadable": [seq, ...]},
     "components": {name: {"kind": "flow"|"work"|"structure", "vars": {...}, "spec": {...},
                           "artifact": <the pickled component, for one added while the app ran>}},
     "works": {name: {"status": {stage, timestamp, reason, message}, "last_index": n,
                      "calls": {call: {"index", "seq", "stage", "timestamp", "reason", "message",
                                       "args", "kwargs"}},
                      "attempt": n, "fenced": n,
                      "worker": {"attempt", "executor", "ref", "state": "running"|"exited",
                                 "cause", "code", "signal", "message"} | None,
                        "interruptions": <workers of it that were preempted>,
                      "endpoint": {"host", "port", "internal_ip", "url", "listening"} (once served)}},
     "schedules": {flow: {key: {"cron", "start", "last", "due"}}} (once a flow called schedule();
                  the fold of its events is ``_schedule``'s)}

A Work's status is the status of its newest call (highest index), so events of different Works,
and a status arriving after a newer request, fold to the same state in any interleaving.

``calls`` holds what the semantics need, so that a long run's state stays the same size: a call
that finished (succeeded, failed, stopped) keeps no ``args``/``kwargs``, even once a resume makes
it pending again (its request event, at its ``seq``, has them). A ``cache_calls=True`` Work keeps one such record per argument set, its cache; a
``cache_calls=False`` Work drops a call over for good (succeeded, failed, stopped by the flow)
unless it is the newest, or the newest of its arguments while an older call with them waits for a
resume (``_compact``). What is kept decides every ``work.run()`` as all the calls would.

Fencing: ``attempt`` is the newest worker started for the Work, ``fenced`` the newest one known to be
over. An event that a worker published (``attempt`` > 0) counts only if its attempt is the newest and
not over; the kernel's own events (``attempt`` 0) always count. An event the fold cannot read (a newer
version, a body that does not fit) changes nothing but ``run.unreadable``: the fold never raises.

Measured with ``python bench/replay.py`` (this 2-core machine, Python 3.11): over a run of 1,000,000
events of a flow that keeps two ``cache_calls=False`` Works busy and calls a ``cache_calls=True``
one with 64 argument sets, this fold runs 560-620k events/s, and its state stays at 66 call records
and 9 KiB from the first 100,000 events to the last (the process's RSS flat at 57-59 MiB). The
same fold building each event (``to_event``) runs 280-370k/s: handlers read the body once it has
the fields of its type (``_fields``). The fold before compaction (275317a), which kept every call
and copied a Work's calls at each of its events, ran 11-12k/s over the run (170k/s over its first
100,000 events), its state 124k call records and 20 MiB at the end, its RSS 68 -> 209 MiB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import _schedule as schedules
from ._codec import _body_keys, to_event
from ._dispatch import USER_STOP
from ._events import (
    UNREADABLE,
    ComponentAdded,
    Event,
    FlowStateChanged,
    RunCreated,
    RunEnded,
    RunInterrupted,
    RunResumed,
    RunStopRequested,
    WorkEndpoint,
    WorkerExited,
    WorkerStarted,
    WorkRunRequested,
    WorkStateChanged,
    WorkStatusChanged,
)
from ._records import EventRecord
from ._status import FINISHED_STAGES, WorkStageStatus
from .errors import EventError

State = dict[str, Any]

FOLD_VERSION = 3
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
    if not state:
        if record.type == RunCreated.TYPE:
            try:
                return _created(record)
            except EventError:
                return state
        return state
    handler = _HANDLERS.get(record.type)
    try:
        if handler is not None:
            new = handler(state, record)
        elif record.type == UNREADABLE:
            raise EventError(str(record.body.get("error", "unreadable")))
        else:
            new = dict(state)
    except _UNREADABLE_BODY:
        new = _run_field(state, unreadable=[*state["run"].get("unreadable", []), record.seq])
    run = dict(new["run"])
    run["seq"] = record.seq
    run["events"] = int(state["run"].get("events", 0)) + 1
    new["run"] = run
    return new


_UNREADABLE_BODY = (EventError, TypeError, AttributeError, ValueError)
"""What reading a body that does not fit raises: an unknown version, missing or unexpected fields
(``EventError``), or fields of the wrong type (a string where the fold compares numbers)."""


def _fields(record: EventRecord, cls: type[Event]) -> dict[str, Any]:
    """The body of ``record`` as the newest version of ``cls`` has it (optional fields may be absent).

    The common case, a body of the current version with the fields of ``cls``, is the body itself:
    building the event (``to_event``) for each record was a third of the fold's time. Anything
    else goes through ``to_event``, which upcasts or raises ``EventError``.
    """
    body = record.body
    if record.version == cls.VERSION:
        required, allowed = _body_keys(cls)
        keys = body.keys()
        if required <= keys and keys <= allowed:
            return body
    return to_event(record).body()


def _stale(work: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether an event of ``work`` comes from a worker attempt that is superseded or over (fenced)."""
    attempt = body.get("attempt", 0)
    if not isinstance(attempt, int) or attempt <= 0:
        return False
    return attempt < work.get("attempt", 0) or attempt <= work.get("fenced", 0)


def new_attempt(state: State, work: str) -> int:
    """The number of the next worker of ``work``."""
    w = state["works"][work]
    return max(w.get("attempt", 0), w.get("fenced", 0)) + 1


def _new_work() -> dict[str, Any]:
    return {
        "status": {"stage": WorkStageStatus.NOT_STARTED},
        "last_index": 0,
        "calls": {},
        "attempt": 0,
        "fenced": 0,
        "worker": None,
    }


def _created(record: EventRecord) -> State:
    e = to_event(record)
    assert isinstance(e, RunCreated)
    works = {name: _new_work() for name, c in e.components.items() if c.get("kind") == "work"}
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
            "events": 1,
            "stop_requested": False,
            **({"argv": list(e.argv)} if e.argv else {}),
            **({"env": dict(e.env)} if e.env else {}),
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
    b = _fields(record, RunEnded)
    return _run_field(state, status=b["status"], message=b.get("message", ""))


def _interrupted(state: State, record: EventRecord) -> State:
    b = _fields(record, RunInterrupted)
    if state["run"]["status"] in RUN_ENDED:
        return dict(state)
    return _run_field(state, status=RUN_INTERRUPTED, message=b["reason"])


def _resumed(state: State, record: EventRecord) -> State:
    _fields(record, RunResumed)
    return _run_field(state, status=RUN_ACTIVE, message="", stop_requested=False)


def _stop_requested(state: State, record: EventRecord) -> State:
    _fields(record, RunStopRequested)
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
    return _set_vars(state, _fields(record, FlowStateChanged)["changes"])


def _work_changed(state: State, record: EventRecord) -> State:
    b = _fields(record, WorkStateChanged)
    work = state["works"].get(b["work"])
    if work is not None and _stale(work, b):
        return dict(state)
    return _set_vars(state, {b["work"]: b["changes"]})


def _with_work(state: State, name: str, work: dict[str, Any]) -> State:
    new = dict(state)
    works = dict(state["works"])
    works[name] = work
    new["works"] = works
    return new


def _caches(state: State, work: str) -> bool:
    """Whether ``work`` has ``cache_calls=True`` (the default, for a Work whose spec does not say)."""
    return bool(state["components"].get(work, {}).get("spec", {}).get("cache_calls", True))


def _droppable(call: dict[str, Any]) -> bool:
    """Whether ``call`` is over for good: succeeded, failed, or stopped by the flow. A call stopped
    otherwise (a signal, its worker gone) runs again when its run is resumed."""
    stage = call["stage"]
    return stage in _OVER or (stage == WorkStageStatus.STOPPED and call.get("reason") == USER_STOP)


_OVER = frozenset({WorkStageStatus.SUCCEEDED, WorkStageStatus.FAILED})


def _compact(calls: dict[str, dict[str, Any]], last_index: int) -> dict[str, dict[str, Any]]:
    """The calls of a ``cache_calls=False`` Work that its semantics still need; drops the rest from
    ``calls`` (a copy the caller owns).

    ``decide`` asks whether the newest call with the same arguments is over (then the call runs
    again) or not (then it waits); an absent call and an over one decide alike. So a call over for
    good is dropped, unless it is the newest call (its record shows what the Work did last), or the
    newest of its arguments while an older call with them is not over for good (it stands in front
    of that one, which a resume runs again).
    """
    newest: dict[str, tuple[int, str]] = {}
    waiting: set[str] = set()
    over: list[tuple[str, str]] = []
    for call_id, c in calls.items():
        key = call_id.split(".", 1)[0]
        best = newest.get(key)
        if best is None or c["index"] > best[0]:
            newest[key] = (c["index"], call_id)
        if not _droppable(c):
            waiting.add(key)
        elif c["index"] != last_index:
            over.append((call_id, key))
    for call_id, key in over:
        if not (key in waiting and newest[key][1] == call_id):
            del calls[call_id]
    return calls


def _requested(state: State, record: EventRecord) -> State:
    b = _fields(record, WorkRunRequested)
    name = b["work"]
    work = state["works"].get(name)
    if work is None:
        return dict(state)
    index = b["index"]
    status = {"stage": WorkStageStatus.PENDING, "timestamp": record.ts, "reason": "", "message": ""}
    calls = dict(work["calls"])
    calls[b["call"]] = {
        "index": index,
        "seq": record.seq,
        "args": b["args"],
        "kwargs": b["kwargs"],
        **status,
    }
    w = dict(work)
    if index > work["last_index"]:
        w["last_index"] = index
        w["status"] = status
    w["calls"] = calls if _caches(state, name) else _compact(calls, w["last_index"])
    return _with_work(state, name, w)


def _status(state: State, record: EventRecord) -> State:
    b = _fields(record, WorkStatusChanged)
    name = b["work"]
    work = state["works"].get(name)
    if work is None or _stale(work, b):
        return dict(state)
    call_id = b["call"]
    call = work["calls"].get(call_id)
    if call is None:
        return dict(state)
    stage = b["stage"]
    status = {
        "stage": stage,
        "timestamp": record.ts,
        "reason": b.get("reason", ""),
        "message": b.get("message", ""),
    }
    calls = dict(work["calls"])
    w = dict(work)
    if stage in FINISHED_STAGES:
        # Its arguments are in its request event; ``decide`` and a resume need only these.
        calls[call_id] = {"index": call["index"], "seq": call["seq"], **status}
        if not _caches(state, name):
            calls = _compact(calls, work["last_index"])
    else:
        calls[call_id] = {**call, **status}
    w["calls"] = calls
    if call["index"] == work["last_index"]:
        w["status"] = status
    return _with_work(state, name, w)


def _worker_started(state: State, record: EventRecord) -> State:
    b = _fields(record, WorkerStarted)
    name, attempt = b["work"], b["attempt"]
    work = state["works"].get(name)
    if work is None or attempt <= work.get("fenced", 0) or attempt < work.get("attempt", 0):
        return dict(state)  # a start recorded after its attempt was fenced or superseded
    w = dict(work)
    w["attempt"] = attempt
    w["worker"] = {"attempt": attempt, "executor": b["executor"], "ref": b.get("ref", {}), "state": "running"}
    return _with_work(state, name, w)


def _worker_exited(state: State, record: EventRecord) -> State:
    b = _fields(record, WorkerExited)
    name, attempt = b["work"], b["attempt"]
    work = state["works"].get(name)
    if work is None:
        return dict(state)
    w = dict(work)
    if b["cause"] == "preempted" and attempt > work.get("fenced", 0):
        w["interruptions"] = work.get("interruptions", 0) + 1  # its node was taken away
    w["fenced"] = max(work.get("fenced", 0), attempt)
    worker = work.get("worker")
    if worker is not None and worker["attempt"] == attempt:
        w["worker"] = {
            **worker,
            "state": "exited",
            "cause": b["cause"],
            "code": b.get("code"),
            "signal": b.get("signal"),
            "message": b.get("message", ""),
        }
    return _with_work(state, name, w)


def _added(state: State, record: EventRecord) -> State:
    b = _fields(record, ComponentAdded)
    name = b["name"]
    if name in state["components"]:
        return dict(state)  # recorded twice (a kernel that died before the first came back)
    new = dict(state)
    comp = {"kind": b["kind"], "vars": b.get("vars", {}), "spec": b.get("spec", {})}
    if b.get("artifact"):
        comp["artifact"] = b["artifact"]
    new["components"] = {**state["components"], name: comp}
    if b["kind"] == "work":
        new["works"] = {**state["works"], name: _new_work()}
    return new


def _endpoint(state: State, record: EventRecord) -> State:
    b = _fields(record, WorkEndpoint)
    work = state["works"].get(b["work"])
    if work is None or _stale(work, b):
        return dict(state)
    keys = ("host", "port", "internal_ip", "url", "listening")
    return _with_work(state, b["work"], {**work, "endpoint": {k: b[k] for k in keys if k in b}})


_HANDLERS: dict[str, Callable[[State, EventRecord], State]] = {
    WorkEndpoint.TYPE: _endpoint,
    ComponentAdded.TYPE: _added,
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


def _schedule_handler(
    cls: type[Event], fold: Callable[[State, dict[str, Any]], State]
) -> Callable[[State, EventRecord], State]:
    return lambda state, record: fold(state, _fields(record, cls))


_HANDLERS.update({cls.TYPE: _schedule_handler(cls, fold) for cls, fold in schedules.FOLDS.items()})


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
