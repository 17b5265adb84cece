"""The recorder's fence in the database: a batch is written only by the kernel the database names as
its recorder, and a frozen kernel's transaction cannot keep the next recorder waiting."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from lightning_kernel._records import Batch, EventRecord, Fence, RunInfo
from lightning_kernel._sql import open_store
from lightning_kernel._sql_write import write_batch
from lightning_kernel.errors import LeaseLost


def event(seq: int) -> EventRecord:
    return EventRecord(seq, f"e{seq}", "r", "work.state_changed", 1, float(seq), "root", {"n": seq})


def run_row(seq: int) -> RunInfo:
    return RunInfo("r", "app", "app.py", "running", 0.0, float(seq), "", seq)


def test_a_batch_of_the_recorder_the_database_names_is_written(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.write(Batch(fence=Fence("a", 5.0, take=True)))
        store.write(
            Batch(events=[event(1)], runs=[run_row(1)], meta={"position": "1"}, fence=Fence("a", 5.0))
        )
        assert [e.seq for e in store.events("r")] == [1]
        assert store.meta()["recorder"] == "a"
    finally:
        store.close()


def test_a_batch_of_a_recorder_taken_over_writes_nothing_and_names_the_new_one(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.write(Batch(fence=Fence("a", 5.0, take=True)))
        store.write(Batch(events=[event(1)], meta={"position": "1"}, fence=Fence("a", 5.0)))
        store.write(Batch(fence=Fence("b", 5.0, take=True)))
        with pytest.raises(
            LeaseLost, match=r"kernel b records into this database now, not this kernel \(a\)"
        ):
            store.write(
                Batch(events=[event(2)], runs=[run_row(2)], meta={"position": "2"}, fence=Fence("a", 5.0))
            )
        assert [e.seq for e in store.events("r")] == [1]
        assert store.meta()["position"] == "1"
    finally:
        store.close()


def test_a_batch_with_a_fence_before_any_recorder_took_the_database_writes_nothing(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with pytest.raises(LeaseLost, match="no kernel records into this database now"):
            store.write(Batch(events=[event(1)], fence=Fence("a", 5.0)))
        assert store.events("r") == []
    finally:
        store.close()


@pytest.mark.postgres
def test_a_frozen_recorders_transaction_is_ended_by_the_server_and_the_next_one_takes_over(
    pg_url: str,
) -> None:
    """The first kernel wrote a batch inside its transaction and then said nothing more (frozen): its
    row locks would keep the take-over waiting for ever; the server ends that transaction instead,
    and none of its batch is committed."""
    store = open_store(pg_url)
    try:
        store.write(Batch(fence=Fence("a", 5.0, take=True)))
        engine: sa.Engine = store._engine
        frozen = engine.connect()
        tx = frozen.begin()
        write_batch(frozen, Batch(events=[event(1)], meta={"position": "1"}, fence=Fence("a", 0.5)))
        took = threading.Event()
        failed: list[BaseException] = []

        def take_over() -> None:
            try:
                store.write(Batch(fence=Fence("b", 5.0, take=True)))
                took.set()
            except BaseException as exc:
                failed.append(exc)

        t = threading.Thread(target=take_over, daemon=True)
        t.start()
        t.join(timeout=60)
        assert not failed, failed
        assert took.is_set(), "the take-over still waits for the frozen transaction's locks after 60 s"
        with pytest.raises(sa.exc.DBAPIError):
            tx.commit()  # the server ended it
        frozen.close()
        assert store.meta()["recorder"] == "b"
        assert store.events("r") == []
    finally:
        store.close()
