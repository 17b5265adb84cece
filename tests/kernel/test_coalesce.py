"""A Work's changes made together leave as one delta; changes with a pause between them never merge,
even when the sender's thread does not get to run (a loaded machine)."""

from __future__ import annotations

import threading
import types

import pytest
from lightning_kernel import _coalesce
from lightning_kernel._coalesce import Coalescer
from lightning_kernel._codec import ENVELOPE_BYTES
from lightning_kernel.errors import KernelError


class Clock:
    """The time, and the Work thread's voluntary context switches (it slept, or waited on I/O)."""

    def __init__(self) -> None:
        self.t = 100.0
        self.switches = 0

    def perf_counter(self) -> float:
        return self.t


@pytest.fixture
def starved(monkeypatch):
    """A coalescer whose sender thread never gets its turn, on a clock the test moves."""
    clock = Clock()
    monkeypatch.setattr(_coalesce, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    released = threading.Event()
    sent: list[dict] = []
    c = Coalescer(
        "root.w", sent.append, limit=1 << 20, switches=lambda: clock.switches, sleep=lambda _: released.wait()
    )
    yield c, clock, sent
    c._pending.clear()  # what the test left is not sent once the sender goes on
    released.set()


def test_changes_made_together_are_one_delta_and_a_pause_starts_another(starved):
    c, clock, sent = starved
    c.add({"changed": True})
    clock.t += 0.00005  # the next assignment, microseconds later
    c.add({"msg": "hello"})
    assert sent == []  # nothing yet: the burst may go on
    clock.t += 0.020  # the Work slept 20 ms; its sender never ran meanwhile
    clock.switches += 1
    c.add({"msg": "again"})
    assert sent == [{"changed": True, "msg": "hello"}]
    c.flush()  # the end of the call, or another event of the Work
    assert sent == [{"changed": True, "msg": "hello"}, {"msg": "again"}]
    c.flush()
    assert len(sent) == 2  # nothing pending, nothing sent


def test_a_work_descheduled_mid_burst_keeps_its_burst_whole(starved):
    c, clock, sent = starved
    c.add({"changed": True})
    clock.t += 0.030  # the OS took the CPU away for 30 ms: no voluntary switch, the burst goes on
    c.add({"msg": "hello"})
    c.flush()
    assert sent == [{"changed": True, "msg": "hello"}]


def test_the_sender_sends_a_burst_once_the_work_is_quiet():
    sent: list[dict] = []
    done = threading.Event()

    def emit(changes: dict) -> None:
        sent.append(changes)
        done.set()

    c = Coalescer("root.w", emit, limit=1 << 20)
    c.add({"a": 1})
    c.add({"b": 2})
    assert done.wait(5)
    assert sent == [{"a": 1, "b": 2}]


def test_a_delta_too_big_together_goes_in_two_and_one_too_big_alone_is_an_error(starved):
    c, _, sent = starved
    c._limit = ENVELOPE_BYTES + 250
    a, b = {"a": "x" * 150}, {"b": "y" * 150}
    c.add(a)
    c.add(b)  # together over the limit: the first goes alone
    assert sent == [a]
    with pytest.raises(KernelError, match=r"root\.w"):
        c.add({"c": "z" * 1000})
    c.flush()
    assert sent == [a, b]
