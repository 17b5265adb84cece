"""``live_record``: what the flow loop and workers act on, so an event that cannot become its event
type (a newer version, a body that does not fit) never reaches code that reads its fields."""

from __future__ import annotations

import json

from lightning_kernel._codec import encode, live_record, read_record
from lightning_kernel._events import UNREADABLE, WorkStatusChanged
from lightning_kernel._projection import apply


def payload(**changes: object) -> tuple[str, bytes]:
    subject, _, data = encode(WorkStatusChanged(work="root.w", call="c1", stage="running"), "r1", "root.w")
    p = json.loads(data)
    p.update({k: v for k, v in changes.items() if k != "body"})
    if "body" in changes:
        p["body"] = changes["body"]
    return subject, json.dumps(p).encode()


def test_a_readable_event_is_the_recorded_one():
    subject, data = payload()
    assert live_record(subject, data, 5) == read_record(subject, data, 5)


def test_a_newer_version_or_a_body_that_does_not_fit_is_unreadable_by_its_seq():
    for changes, error in (
        ({"v": 99}, "work.status_changed v99, newer than this kernel's v1"),
        ({"body": {"work": "root.w", "phase": "done"}}, "has a body that does not fit"),
        ({"body": {"work": "root.w", "call": "c1", "stage": "x", "extra": 1}}, "does not fit"),
    ):
        subject, data = payload(**changes)
        record = live_record(subject, data, 7)
        assert record.type == UNREADABLE and record.seq == 7, changes
        assert error in str(record.body["error"]) and record.body["subject"] == subject


def test_the_fold_of_the_live_record_is_the_fold_of_the_recorded_one():
    created = {"name": "a", "app_file": "a.py", "app": "ref", "components": {"root.w": {"kind": "work"}}}
    subject, data = payload()
    p = json.loads(data)
    start = json.dumps({**p, "type": "run.created", "body": created}).encode()
    state = apply({}, read_record("lk.r1.run", start, 1))
    subject, bad = payload(v=99)
    live = apply(state, live_record(subject, bad, 2))
    recorded = apply(state, read_record(subject, bad, 2))
    assert live == recorded and live["run"]["unreadable"] == [2] and live["run"]["seq"] == 2
