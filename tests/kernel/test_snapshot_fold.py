"""Properties of the fold that snapshots and compaction stand on.

A snapshot (the state as the store keeps it: JSON) plus the events after it folds to the state of
the whole history, wherever the snapshot was taken; the compacted ``calls`` decide every
``work.run()`` and every resume as all the calls would; a snapshot of another fold version is not
loaded. Histories are random runs of the events the fold knows: Works with and without
``cache_calls``, calls and their statuses, workers started, superseded and fenced, and events that
do not fit.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightning_kernel import _projection as projection
from lightning_kernel import _store
from lightning_kernel._codec import decode_record, encode
from lightning_kernel._dispatch import USER_STOP, decide
from lightning_kernel._events import (
    Event,
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
from lightning_kernel._json import dumps
from lightning_kernel._records import Batch, EventRecord, RunInfo, Snapshot
from lightning_kernel._sql import open_store
from lightning_kernel._store import load_state
from lightning_kernel._work import call_hash

RUN = "r1"
WORKS: dict[str, dict[str, Any]] = {
    "root.fresh": {"cache_calls": False, "parallel": True},
    "root.cached": {"cache_calls": True, "parallel": False},
    "root.bare": {},  # a spec that does not say: cache_calls=True, as LightningWork's default
}
ARGS: tuple[list[Any], ...] = ([0], [1])
STAGES = ("pending", "running", "succeeded", "failed", "stopped", "not_started")
REASONS = ("", USER_STOP, "sigterm", "WorkerExited")
COMPONENTS = {
    "root": {"kind": "flow", "vars": {"n": 0}, "spec": {}},
    **{name: {"kind": "work", "vars": {"v": 0}, "spec": spec} for name, spec in WORKS.items()},
}
KINDS = (
    "flow",
    "request",
    "request",
    "status",
    "status",
    "status",
    "state",
    "record",
    "start",
    "exit",
    "run",
    "bad",
)


def cache_calls(work: str) -> bool:
    return bool(WORKS[work].get("cache_calls", True))


class History:
    """A run's events as the store returns them, drawn step by step."""

    def __init__(self) -> None:
        self.records: list[EventRecord] = []
        self.calls: dict[str, list[str]] = {w: [] for w in WORKS}
        self.index = dict.fromkeys(WORKS, 0)
        self.attempt = dict.fromkeys(WORKS, 0)
        self.add(RunCreated(name="app", app_file="/a.py", app="ref", components=COMPONENTS))

    def add(self, event: Event) -> None:
        seq = len(self.records) + 1
        _, _, data = encode(event, RUN, "test")
        self.records.append(decode_record(data, seq))

    def add_raw(self, type_: str, version: int, body: dict[str, Any]) -> None:
        seq = len(self.records) + 1
        self.records.append(EventRecord(seq, f"raw-{seq}", RUN, type_, version, float(seq), "test", body))

    def step(self, data: st.DataObject, over: Callable[[str, str], bool] | None) -> None:
        """One drawn event. ``over(work, call)``: whether a call is over for good, for histories that
        keep the kernel's protocol (no status reopens such a call, indices only grow); None for any."""
        kind = data.draw(st.sampled_from(KINDS))
        work = data.draw(st.sampled_from(sorted(WORKS)))
        attempt = data.draw(
            st.sampled_from((0, self.attempt[work], self.attempt[work] - 1, self.attempt[work] + 1))
        )
        if kind == "flow":
            changes = {"root": {"n": data.draw(st.integers(0, 3))}}
            if data.draw(st.booleans()):
                changes[work] = {"v": data.draw(st.integers(0, 3))}
            self.add(FlowStateChanged(changes=changes))
        elif kind == "request":
            args = data.draw(st.sampled_from(ARGS))
            index = self.index[work] + 1
            if over is None and data.draw(st.booleans()):
                index = data.draw(st.integers(1, index))
            key = call_hash(args, {})
            call = key if cache_calls(work) else f"{key}.{index}"
            self.index[work] = max(self.index[work], index)
            self.calls[work].append(call)
            self.add(WorkRunRequested(work=work, call=call, index=index, args=args, kwargs={}, vars={"v": 1}))
        elif kind == "status":
            known = self.calls[work]
            call = data.draw(st.sampled_from(known)) if known else "nobody"
            if over is not None and over(work, call):
                return
            stage = data.draw(st.sampled_from(STAGES))
            reason = data.draw(st.sampled_from(REASONS))
            self.add(
                WorkStatusChanged(work=work, call=call, stage=stage, reason=reason, attempt=max(attempt, 0))
            )
        elif kind == "resume":  # as ``Kernel.resume_run``: stopped calls pending again
            for call in dict.fromkeys(self.calls[work]):
                if over is None or not over(work, call):
                    self.add(WorkStatusChanged(work=work, call=call, stage="pending", reason="resumed"))
        elif kind == "state":
            call = self.calls[work][-1] if self.calls[work] else "c"
            v = data.draw(st.integers(0, 3))
            self.add(WorkStateChanged(work=work, call=call, changes={"v": v}, attempt=max(attempt, 0)))
        elif kind == "record":
            self.add(
                WorkRecord(work=work, kind="path.persisted", data={"path": "p"}, attempt=max(attempt, 0))
            )
        elif kind == "start":
            self.attempt[work] += 1
            self.add(
                WorkerStarted(work=work, attempt=max(attempt, 1), executor="local", ref={"pid": attempt})
            )
        elif kind == "exit":
            cause = data.draw(st.sampled_from(("exited", "killed", "preempted", "lost")))
            self.add(WorkerExited(work=work, attempt=max(attempt, 1), cause=cause, code=0))
        elif kind == "run":
            event = data.draw(
                st.sampled_from(
                    (
                        RunInterrupted(reason="sigterm"),
                        RunResumed(),
                        RunStopRequested(reason="asked"),
                        RunEnded(status="stopped", message="asked"),
                    )
                )
            )
            self.add(event)
        else:
            bad = data.draw(st.integers(0, 3))
            if bad == 0:  # a newer version than this kernel knows
                self.add_raw(WorkStatusChanged.TYPE, 9, {"work": work, "call": "c", "stage": "running"})
            elif bad == 1:  # a field of the wrong type
                body = {"work": work, "call": "c", "index": "two", "args": [], "kwargs": {}}
                self.add_raw(WorkRunRequested.TYPE, 1, body)
            elif bad == 2:  # a field this version does not have
                self.add_raw(FlowStateChanged.TYPE, 1, {"changes": {}, "extra": 1})
            else:
                self.add_raw("event.unreadable", 1, {"error": "not an event", "subject": "lk.r1.run"})


def as_stored(state: projection.State) -> projection.State:
    """``state`` as a snapshot row gives it back."""
    loaded: projection.State = json.loads(dumps(state))
    return loaded


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_a_snapshot_plus_its_tail_folds_to_the_whole_history(data: st.DataObject) -> None:
    history = History()
    for _ in range(data.draw(st.integers(0, 80))):
        history.step(data, over=None)
    records = history.records
    whole = projection.fold(records)
    cut = data.draw(st.integers(1, len(records)))
    head = projection.fold(records[:cut])
    before = copy.deepcopy(head)
    assert projection.fold(records[cut:], as_stored(head)) == whole
    assert projection.fold(records[cut:], head) == whole
    assert head == before, "folding the tail changed the snapshot's state"
    assert as_stored(whole) == whole


def _resumed_by_a_restart(calls: dict[str, dict[str, Any]]) -> list[str]:
    # What ``Kernel.resume_run`` makes pending again: calls stopped by anything but the flow.
    ordered = sorted(calls.items(), key=lambda kv: kv[1]["index"])
    return [k for k, c in ordered if c["stage"] == "stopped" and c.get("reason") != USER_STOP]


@SETTINGS
@given(data=st.data())
def test_compacted_calls_decide_and_resume_as_all_the_calls_would(data: st.DataObject) -> None:
    def every_call(calls: dict[str, dict[str, Any]], last_index: int) -> dict[str, dict[str, Any]]:
        return calls

    history = History()
    everything = projection.fold(history.records)

    def over(work: str, call: str) -> bool:
        c = everything["works"][work]["calls"].get(call)
        return c is not None and (
            c["stage"] in ("succeeded", "failed") or (c["stage"] == "stopped" and c["reason"] == USER_STOP)
        )

    for _ in range(data.draw(st.integers(0, 80))):
        seen = len(history.records)
        history.step(data, over=over)
        with mock.patch.object(projection, "_compact", every_call):
            everything = projection.fold(history.records[seen:], everything)
    compacted = projection.fold(history.records)
    assert {k: v for k, v in compacted.items() if k != "works"} == {
        k: v for k, v in everything.items() if k != "works"
    }
    for name, spec in WORKS.items():
        kept, full = compacted["works"][name], everything["works"][name]
        assert {k: v for k, v in kept.items() if k != "calls"} == {
            k: v for k, v in full.items() if k != "calls"
        }
        assert set(kept["calls"]) <= set(full["calls"])
        assert all(full["calls"][k] == c for k, c in kept["calls"].items())
        assert projection.unfinished_calls(compacted, name) == projection.unfinished_calls(everything, name)
        assert _resumed_by_a_restart(kept["calls"]) == _resumed_by_a_restart(full["calls"])
        for args in ARGS:
            for parallel in (True, False):
                one = decide(
                    name, cache_calls(name), parallel, kept["calls"], kept["last_index"], tuple(args), {}
                )
                two = decide(
                    name, cache_calls(name), parallel, full["calls"], full["last_index"], tuple(args), {}
                )
                assert one == two, f"{name}.run{tuple(args)} decides otherwise on the compacted calls"
        if not spec.get("cache_calls", True):
            # What stays: calls not over for good, the newest, and one per argument set in front of those.
            waiting = {k for k, c in kept["calls"].items() if not over(name, k)}
            assert len(kept["calls"]) <= 2 * len(waiting) + 1


def test_a_snapshot_of_another_fold_version_is_not_loaded(tmp_path: Any) -> None:
    history = History()
    for i in range(1, 41):
        call = f"{call_hash([i], {})}.{i}"
        history.add(WorkRunRequested(work="root.fresh", call=call, index=i, args=[i], kwargs={}))
        history.add(WorkStatusChanged(work="root.fresh", call=call, stage="succeeded"))
    records = history.records
    whole = projection.fold(records)
    at = 41
    head = projection.fold(records[:at])
    marked = copy.deepcopy(head)
    marked["components"]["root"]["vars"]["n"] = "from the snapshot"
    older = copy.deepcopy(head)
    older["components"]["root"]["vars"]["n"] = "from another fold's snapshot"
    store = open_store(f"sqlite:///{tmp_path}/kernel.db")
    try:
        info = RunInfo(RUN, "app", "/a.py", "running", 1.0, 2.0, "", records[-1].seq)
        store.write(Batch(events=records, runs=[info]))
        assert load_state(store, RUN) == whole  # no snapshot: the whole history
        store.write(Batch(snapshots=[Snapshot(RUN, at + 10, older, projection.FOLD_VERSION - 1)]))
        assert load_state(store, RUN) == whole, "a snapshot of another fold version was loaded"
        store.write(Batch(snapshots=[Snapshot(RUN, at, marked, projection.FOLD_VERSION)]))
        loaded = load_state(store, RUN)
        assert loaded["components"]["root"]["vars"]["n"] == "from the snapshot"
        assert {k: v for k, v in loaded.items() if k != "components"} == {
            k: v for k, v in whole.items() if k != "components"
        }
        assert load_state(store, RUN, upto_seq=at + 20) == projection.fold(records[at : at + 20], marked)
    finally:
        store.close()


def test_a_load_without_a_snapshot_folds_the_run_page_by_page(tmp_path: Any) -> None:
    history = History()
    for i in range(1, 21):
        history.add(FlowStateChanged(changes={"root": {"n": i}}))
    records = history.records
    store = open_store(f"sqlite:///{tmp_path}/kernel.db")
    try:
        store.write(Batch(events=records, runs=[RunInfo(RUN, "app", "/a.py", "running", 1.0, 2.0, "", 21)]))
        for page in (1, 7, len(records), len(records) + 1):
            with mock.patch.object(_store, "LOAD_PAGE", page):
                assert load_state(store, RUN) == projection.fold(records)
                assert load_state(store, RUN, upto_seq=15) == projection.fold(records[:15])
    finally:
        store.close()
