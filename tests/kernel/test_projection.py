"""The fold: pure, order-insensitive where it must be, and the same for live and replayed events."""

from __future__ import annotations

import copy
import json

import pytest
from lightning_kernel import _projection as projection
from lightning_kernel._codec import decode_record, encode, to_event
from lightning_kernel._events import (
    Event,
    FlowStateChanged,
    RunCreated,
    RunEnded,
    WorkRunRequested,
    WorkStateChanged,
    WorkStatusChanged,
)
from lightning_kernel._records import EventRecord
from lightning_kernel.errors import EventError

COMPONENTS = {
    "root": {"kind": "flow", "vars": {"n": 0}, "spec": {}},
    "root.w": {"kind": "work", "vars": {"counter": 0}, "spec": {}},
}


def rec(seq: int, event: Event, run: str = "r1") -> EventRecord:
    _, _, data = encode(event, run, "test")
    return decode_record(data, seq)


def created() -> EventRecord:
    return rec(1, RunCreated(name="app", app_file="/a.py", app="ref", components=COMPONENTS))


def test_codec_round_trip_and_subjects():
    e = WorkRunRequested(work="root.a.b", call="c1", index=1, args=[1], kwargs={"x": "y"})
    subject, eid, data = encode(e, "r9", "kernel")
    assert subject == "lk.r9.cmd.root:a:b"
    r = decode_record(data, 42)
    assert r.seq == 42 and r.id == eid and r.source == "kernel" and to_event(r) == e
    with pytest.raises(EventError, match="not JSON"):
        encode(FlowStateChanged(changes={"root": {"x": object()}}), "r", "k")
    with pytest.raises(EventError, match="not a lightning-kernel event"):
        decode_record(b"nope", 3)
    bad = EventRecord(5, "i", "r", "no.such", 1, 0.0, "s", {})
    with pytest.raises(EventError, match="unknown type"):
        to_event(bad)
    newer = EventRecord(5, "i", "r", "run.ended", 9, 0.0, "s", {"status": "failed"})
    with pytest.raises(EventError, match="newer than this kernel"):
        to_event(newer)


def test_fold_tracks_vars_calls_and_status():
    events = [
        created(),
        rec(2, WorkRunRequested(work="root.w", call="c", index=1, args=[], kwargs={})),
        rec(3, WorkStatusChanged(work="root.w", call="c", stage="running")),
        rec(4, WorkStateChanged(work="root.w", call="c", changes={"counter": 1})),
        rec(5, FlowStateChanged(changes={"root": {"n": 2}})),
        rec(6, WorkStatusChanged(work="root.w", call="c", stage="succeeded")),
    ]
    s = projection.fold(events)
    assert s["run"]["seq"] == 6 and s["run"]["status"] == "running"
    assert s["components"]["root.w"]["vars"] == {"counter": 1}
    assert s["components"]["root"]["vars"] == {"n": 2}
    assert s["works"]["root.w"]["status"]["stage"] == "succeeded"
    assert projection.component_tree(s)["works"]["w"]["vars"] == {"counter": 1}
    s2 = projection.apply(s, rec(7, RunEnded(status="succeeded", message="ok")))
    assert s2["run"]["status"] == "succeeded" and s["run"]["status"] == "running"


def test_apply_never_mutates_its_input():
    s = projection.fold([created()])
    before = copy.deepcopy(s)
    projection.apply(s, rec(2, WorkRunRequested(work="root.w", call="c", index=1, args=[], kwargs={})))
    projection.apply(s, rec(3, FlowStateChanged(changes={"root": {"n": 5}})))
    assert s == before


def test_status_of_old_call_after_newer_request_commutes():
    base = projection.fold(
        [
            created(),
            rec(2, WorkRunRequested(work="root.w", call="a", index=1, args=[], kwargs={})),
        ]
    )
    done = rec(3, WorkStatusChanged(work="root.w", call="a", stage="succeeded"))
    newer = rec(4, WorkRunRequested(work="root.w", call="b", index=2, args=[], kwargs={}))
    one = projection.apply(projection.apply(base, done), newer)
    two = projection.apply(projection.apply(base, newer), done)
    for s in (one, two):
        assert s["works"]["root.w"]["status"]["stage"] == "pending"
        assert s["works"]["root.w"]["calls"]["a"]["stage"] == "succeeded"
    assert json.loads(json.dumps(one)) == one  # JSON all the way down
