"""Property: however batches are split, repeated and reordered, the store ends with each event once
and each run at its newest row (what the recorder relies on when NATS redelivers)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightning_kernel._records import Batch, RunInfo
from lightning_kernel._sql import SqlEventStore, open_store
from lightning_kernel.testing._store import event

_runs = itertools.count()


@pytest.fixture
def store(store_url: str) -> Iterator[SqlEventStore]:
    s = open_store(store_url)
    yield s
    s.close()


# A delivery is a slice [start, stop) of the run's events, possibly delivered again later.
deliveries = st.lists(st.tuples(st.integers(0, 150), st.integers(1, 150)), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slices=deliveries)
def test_redelivery_leaves_each_event_once(store: SqlEventStore, slices: list[tuple[int, int]]) -> None:
    n = next(_runs)
    run_id, base = f"run-{n}", 1 + n * 1000  # seqs are global: each example gets its own range
    events = [event(base + i, run_id) for i in range(150)]
    delivered: set[int] = set()
    newest = 0
    for start, length in slices:
        chunk = events[start : start + length]
        if not chunk:
            continue
        last = chunk[-1].seq
        info = RunInfo(run_id, "app", "app.py", f"at-{last}", 1.0, float(last), "", last)
        store.write(Batch(events=chunk, runs=[info]))
        delivered.update(e.seq for e in chunk)
        newest = max(newest, last)
    got = store.events(run_id)
    assert [e.seq for e in got] == sorted(delivered)
    assert got == [e for e in events if e.seq in delivered]
    if newest:
        assert store.run(run_id).status == f"at-{newest}"
