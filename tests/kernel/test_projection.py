"""The fold: pure, order-insensitive where it must be, and the same for live and replayed events."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from lightning_kernel import _projection as projection
from lightning_kernel._codec import decode_record, encode, to_event
from lightning_kernel._dispatch import USER_STOP
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


def _calls_run(spec: dict[str, Any], steps: list[tuple[str, str, str, str]]) -> projection.State:
    """Fold a run of one Work ``root.f`` with ``spec`` through ``steps``: ``("run", call, args, "")``
    requests ``call`` (the next index), ``("status", call, stage, reason)`` reports on it."""
    comps = {
        "root": {"kind": "flow", "vars": {}, "spec": {}},
        "root.f": {"kind": "work", "vars": {}, "spec": spec},
    }
    events: list[EventRecord] = [rec(1, RunCreated(name="a", app_file="/a.py", app="ref", components=comps))]
    index = 0
    for kind, call, arg, reason in steps:
        seq = len(events) + 1
        if kind == "run":
            index += 1
            events.append(
                rec(seq, WorkRunRequested(work="root.f", call=call, index=index, args=[arg], kwargs={}))
            )
        else:
            events.append(rec(seq, WorkStatusChanged(work="root.f", call=call, stage=arg, reason=reason)))
    return projection.fold(events)


def test_cache_calls_false_keeps_only_the_calls_its_semantics_need():
    steps: list[tuple[str, str, str, str]] = []
    for i in range(1, 201):
        steps += [
            ("run", f"k.{i}", "a", ""),
            ("status", f"k.{i}", "running", ""),
            ("status", f"k.{i}", "succeeded", ""),
        ]
    calls = _calls_run({"cache_calls": False}, steps)["works"]["root.f"]["calls"]
    assert calls == {
        "k.200": {
            "index": 200,
            "seq": 599,
            "stage": "succeeded",
            "timestamp": calls["k.200"]["timestamp"],
            "reason": "",
            "message": "",
        }
    }

    # Kept: calls not over (pending, running), one stopped by a signal (a resume runs it again), and the
    # newest call with its arguments in front of it; dropped: succeeded, failed, stopped by the flow.
    steps = [
        ("run", "a.1", "a", ""),
        ("status", "a.1", "stopped", "sigterm"),
        ("run", "a.2", "a", ""),
        ("status", "a.2", "succeeded", ""),
        ("run", "b.3", "b", ""),
        ("status", "b.3", "failed", ""),
        ("run", "c.4", "c", ""),
        ("status", "c.4", "stopped", USER_STOP),
        ("run", "d.5", "d", ""),
        ("status", "d.5", "running", ""),
        ("run", "e.6", "e", ""),
    ]
    w = _calls_run({"cache_calls": False}, steps)["works"]["root.f"]
    assert {k: c["stage"] for k, c in w["calls"].items()} == {
        "a.1": "stopped",
        "a.2": "succeeded",
        "d.5": "running",
        "e.6": "pending",
    }
    assert [c["call_id"] for c in projection.unfinished_calls({"works": {"root.f": w}}, "root.f")] == [
        "d.5",
        "e.6",
    ]
    assert "args" not in w["calls"]["a.2"] and w["calls"]["e.6"]["args"] == ["e"]
    # Once a.1 is over for good, a.2 need not stand in front of it.
    w = _calls_run({"cache_calls": False}, [*steps, ("status", "a.1", "succeeded", "")])["works"]["root.f"]
    assert sorted(w["calls"]) == ["d.5", "e.6"]


def test_cache_calls_true_keeps_one_small_record_per_argument_set():
    steps: list[tuple[str, str, str, str]] = []
    for arg in ("x", "y", "z"):
        steps += [("run", arg, arg, ""), ("status", arg, "succeeded", "")]
    for spec in ({"cache_calls": True}, {}):
        w = _calls_run(spec, steps)["works"]["root.f"]
        assert sorted(w["calls"]) == ["x", "y", "z"]
        assert all(
            set(c) == {"index", "seq", "stage", "timestamp", "reason", "message"} for c in w["calls"].values()
        )
        assert w["status"]["stage"] == "succeeded" and w["last_index"] == 3


def test_a_body_of_the_wrong_shape_is_unreadable_and_changes_nothing_else():
    s = projection.fold([created()])
    bad = [
        EventRecord(
            2,
            "i2",
            "r1",
            WorkRunRequested.TYPE,
            1,
            0.0,
            "k",
            {"work": "root.w", "call": "c", "index": "one", "args": [], "kwargs": {}},
        ),
        EventRecord(3, "i3", "r1", FlowStateChanged.TYPE, 1, 0.0, "k", {"changes": ["not", "a", "dict"]}),
        EventRecord(
            4,
            "i4",
            "r1",
            WorkStatusChanged.TYPE,
            1,
            0.0,
            "k",
            {"work": "root.w", "call": "c", "stage": "running", "extra": 1},
        ),
        EventRecord(5, "i5", "r1", RunEnded.TYPE, 7, 0.0, "k", {"status": "failed"}),
    ]
    after = projection.fold(bad, s)
    assert after["run"]["unreadable"] == [2, 3, 4, 5] and after["run"]["seq"] == 5
    assert {k: v for k, v in after.items() if k != "run"} == {k: v for k, v in s.items() if k != "run"}
