"""``EventStoreContract``: the behaviour every ``EventStore`` must have, as pytest tests.

A store shipped outside this package proves itself by subclassing the contract and overriding
the ``make_store`` fixture, which returns a factory: each call opens a store on the same, initially
empty, database (some tests open two stores, to check what one sees of the other's writes)::

    from lightning_kernel.testing import EventStoreContract

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: MyStore(tmp_path / "db")

The contract closes every store it gets from the factory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .._records import Batch, EventRecord, LogLine, RunInfo, Snapshot
from .._store import EventStore
from ..errors import RunNotFound, StoreError

StoreFactory = Callable[[], EventStore]


def event(
    seq: int, run_id: str = "run-a", type: str = "Tick", body: dict[str, Any] | None = None
) -> EventRecord:
    """An event whose id is derived from ``seq`` and ``run_id``."""
    return EventRecord(
        seq=seq,
        id=f"{run_id}-ev-{seq}",
        run_id=run_id,
        type=type,
        version=1,
        ts=1_700_000_000.0 + seq / 1000,
        source="root",
        body={"n": seq} if body is None else body,
    )


def _fields(e: EventRecord) -> dict[str, Any]:
    return {name: getattr(e, name) for name in EventRecord.__slots__}


def run_info(
    run_id: str = "run-a", created_at: float = 100.0, status: str = "running", last_seq: int = 1
) -> RunInfo:
    return RunInfo(
        id=run_id,
        name=f"app {run_id}",
        app_file=f"/apps/{run_id}.py",
        status=status,
        created_at=created_at,
        updated_at=created_at + last_seq,
        message="",
        last_seq=last_seq,
    )


def log_line(seq: int, component: str = "root", run_id: str = "run-a", line: str = "") -> LogLine:
    return LogLine(seq, run_id, component, 1_700_000_000.0 + seq, "stdout", line or f"line {seq}")


class EventStoreContract:
    """Subclass, override ``make_store``, and pytest runs every ``test_*`` against your store."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        """Override: return a factory of stores on one fresh, empty database."""
        raise NotImplementedError(f"{type(self).__name__} must override the make_store fixture")

    @pytest.fixture
    def open_stores(self, make_store: StoreFactory) -> Iterator[StoreFactory]:
        opened: list[EventStore] = []

        def open_one() -> EventStore:
            store = make_store()
            opened.append(store)
            return store

        yield open_one
        for store in opened:
            store.close()

    @pytest.fixture
    def store(self, open_stores: StoreFactory) -> EventStore:
        return open_stores()

    # -- events -------------------------------------------------------------------------------------

    def test_empty_store(self, store: EventStore) -> None:
        assert store.max_seq() == 0
        assert store.events("run-a") == []
        assert store.runs() == []
        assert store.latest_snapshot("run-a") is None
        assert store.logs("run-a") == []

    def test_events_round_trip_every_field(self, store: EventStore) -> None:
        body = {"changes": {"x": [1, 2.5, None, True], "s": 'héllo \u2603 "q"'}, "nested": {"a": {"b": []}}}
        ev = EventRecord(7, "id-7", "run-a", "WorkStateChanged", 3, 1_700_000_123.25, "root.w_1", body)
        store.write(Batch(events=[ev]))
        assert store.events("run-a") == [ev]
        assert store.max_seq() == 7

    def test_events_come_in_seq_order_per_run(self, store: EventStore) -> None:
        mixed = [event(5, "run-b"), event(3), event(9), event(1), event(4, "run-b")]
        store.write(Batch(events=mixed))
        assert [e.seq for e in store.events("run-a")] == [1, 3, 9]
        assert [e.seq for e in store.events("run-b")] == [4, 5]
        assert store.max_seq() == 9

    def test_event_filters(self, store: EventStore) -> None:
        store.write(Batch(events=[event(s, type="Even" if s % 2 == 0 else "Odd") for s in range(1, 21)]))
        assert [e.seq for e in store.events("run-a", after_seq=15)] == [16, 17, 18, 19, 20]
        assert [e.seq for e in store.events("run-a", upto_seq=3)] == [1, 2, 3]
        assert [e.seq for e in store.events("run-a", after_seq=4, upto_seq=7)] == [5, 6, 7]
        assert [e.seq for e in store.events("run-a", after_seq=10, limit=3)] == [11, 12, 13]
        assert [e.seq for e in store.events("run-a", types=["Even"], upto_seq=8)] == [2, 4, 6, 8]
        assert [e.seq for e in store.events("run-a", types=["Even", "Odd"], limit=2)] == [1, 2]
        assert store.events("run-a", types=[]) == []
        assert store.events("run-zzz") == []

    def test_rewriting_a_batch_changes_nothing(self, store: EventStore) -> None:
        batch = Batch(
            events=[event(s) for s in range(1, 11)],
            runs=[run_info(last_seq=10)],
            snapshots=[Snapshot("run-a", 10, {"n": 10})],
            logs=[log_line(s) for s in range(1, 4)],
        )
        store.write(batch)
        before = (store.events("run-a"), store.runs(), store.latest_snapshot("run-a"), store.logs("run-a"))
        store.write(batch)
        after = (store.events("run-a"), store.runs(), store.latest_snapshot("run-a"), store.logs("run-a"))
        assert after == before
        assert len(after[0]) == 10 and len(after[3]) == 3

    def test_known_id_is_ignored(self, store: EventStore) -> None:
        store.write(Batch(events=[event(1), event(2)]))
        # The same event published again after JetStream's de-duplication window: a new seq.
        again = EventRecord(3, "run-a-ev-1", "run-a", "Tick", 1, 0.0, "root", {"n": 1})
        store.write(Batch(events=[again, event(4)]))
        assert [(e.seq, e.id) for e in store.events("run-a")] == [
            (1, "run-a-ev-1"),
            (2, "run-a-ev-2"),
            (4, "run-a-ev-4"),
        ]

    def test_seq_known_under_another_id_fails_the_batch(self, store: EventStore) -> None:
        store.write(Batch(events=[event(1), event(2)]))
        # A reset stream numbers new events from 1 again: dropping them silently would lose them.
        reused = EventRecord(2, "another-id", "run-b", "Other", 1, 0.0, "x", {})
        with pytest.raises(StoreError, match="seq 2"):
            store.write(Batch(events=[event(3, "run-b"), reused], runs=[run_info("run-b")]))
        assert store.events("run-b") == []
        assert store.runs() == []
        assert [e.id for e in store.events("run-a")] == ["run-a-ev-1", "run-a-ev-2"]

    def test_duplicates_inside_one_batch(self, store: EventStore) -> None:
        store.write(Batch(events=[event(1), event(1), event(2)], logs=[log_line(1), log_line(1)]))
        assert [e.seq for e in store.events("run-a")] == [1, 2]
        assert [g.seq for g in store.logs("run-a")] == [1]

    def test_empty_batch_is_a_no_op(self, store: EventStore) -> None:
        store.write(Batch())
        assert store.max_seq() == 0

    @pytest.mark.parametrize("size", [2, 1000])
    def test_failing_batch_leaves_nothing(self, store: EventStore, size: int) -> None:
        bad = LogLine(size + 1, "run-a", None, 1.0, "stdout", "x")  # type: ignore[arg-type]  # NOT NULL
        batch = Batch(
            events=[event(s) for s in range(1, size + 1)],
            runs=[run_info(last_seq=size)],
            snapshots=[Snapshot("run-a", size, {})],
            logs=[*(log_line(s) for s in range(1, size + 1)), bad],
        )
        with pytest.raises(StoreError):
            store.write(batch)
        assert store.events("run-a") == []
        assert store.runs() == []
        assert store.latest_snapshot("run-a") is None
        assert store.logs("run-a") == []
        batch.logs.pop()
        store.write(batch)  # the store is still usable, with batches of the same size
        assert len(store.events("run-a")) == size
        assert len(store.logs("run-a")) == size

    def test_large_batches_as_the_recorder_writes_them(self, store: EventStore) -> None:
        first = [event(s, body={"changes": {"i": s, "text": f"tab\there \\ {s}"}}) for s in range(1, 1001)]
        logs = [log_line(s, line=f"line\twith\\escapes {s}") for s in range(1, 1001)]
        store.write(Batch(events=first, runs=[run_info(last_seq=1000)], logs=logs))
        # A redelivery that overlaps the first batch, with duplicates inside it, then new events.
        second = [*first[500:], *first[900:], *(event(s) for s in range(1001, 1501))]
        store.write(Batch(events=second, runs=[run_info(last_seq=1500)], logs=logs[:100]))
        assert store.events("run-a") == [*first, *(event(s) for s in range(1001, 1501))]
        assert store.logs("run-a") == logs
        assert store.run("run-a").last_seq == 1500
        assert store.max_seq() == 1500

    # -- runs ---------------------------------------------------------------------------------------

    def test_runs_are_upserted_and_listed_newest_first(self, store: EventStore) -> None:
        store.write(
            Batch(
                runs=[
                    run_info("old", created_at=1.0),
                    run_info("new", created_at=3.0),
                    run_info("mid", created_at=2.0),
                ]
            )
        )
        assert [r.id for r in store.runs()] == ["new", "mid", "old"]
        assert [r.id for r in store.runs(limit=2)] == ["new", "mid"]
        done = RunInfo("mid", "app mid", "/apps/mid.py", "succeeded", 2.0, 9.0, "done", 7)
        store.write(Batch(runs=[done]))
        assert store.run("mid") == done
        assert [r.id for r in store.runs(status=["succeeded"])] == ["mid"]
        assert [r.id for r in store.runs(status=["running", "failed"])] == ["new", "old"]
        assert len(store.runs()) == 3

    def test_run_never_moves_back_to_an_older_seq(self, store: EventStore) -> None:
        newer = RunInfo("run-a", "app", "a.py", "succeeded", 1.0, 5.0, "done", 50)
        older = RunInfo("run-a", "app", "a.py", "running", 1.0, 4.0, "", 40)
        store.write(Batch(runs=[newer]))
        store.write(Batch(runs=[older]))  # a redelivered, older batch
        assert store.run("run-a") == newer
        store.write(Batch(runs=[older, newer, older]))  # one id twice in a batch: the newest wins
        assert store.run("run-a") == newer

    def test_run_lookup(self, store: EventStore) -> None:
        with pytest.raises(RunNotFound):
            store.run("latest")
        store.write(Batch(runs=[run_info("a", created_at=5.0), run_info("b", created_at=7.0)]))
        assert store.run("latest").id == "b"
        assert store.run("a").created_at == 5.0
        with pytest.raises(RunNotFound) as info:
            store.run("nope")
        assert info.value.run_id == "nope"

    # -- snapshots ----------------------------------------------------------------------------------

    def test_latest_snapshot_at_or_below_a_seq(self, store: EventStore) -> None:
        snaps = [Snapshot("run-a", s, {"at": s, "tree": {"w": [s]}}) for s in (10, 20, 30)]
        store.write(Batch(snapshots=[*snaps, Snapshot("run-b", 25, {"other": True})]))
        assert store.latest_snapshot("run-a") == snaps[2]
        assert store.latest_snapshot("run-a", upto_seq=29) == snaps[1]
        assert store.latest_snapshot("run-a", upto_seq=20) == snaps[1]
        assert store.latest_snapshot("run-a", upto_seq=9) is None
        store.write(Batch(snapshots=[Snapshot("run-a", 30, {"at": "again"})]))
        latest = store.latest_snapshot("run-a")
        assert latest is not None and latest.state == {"at": "again"}

    def test_a_snapshot_of_another_fold_version_is_not_loaded(self, store: EventStore) -> None:
        store.write(Batch(snapshots=[Snapshot("run-a", 10, {"v": 1}, 1), Snapshot("run-a", 20, {"v": 2}, 2)]))
        assert store.latest_snapshot("run-a") == Snapshot("run-a", 20, {"v": 2}, 2)
        assert store.latest_snapshot("run-a", fold=1) == Snapshot("run-a", 10, {"v": 1}, 1)
        assert store.latest_snapshot("run-a", fold=3) is None

    def test_an_event_keeps_the_seq_of_the_state_its_iteration_ran_on(self, store: EventStore) -> None:
        e = event(5)
        store.write(Batch(events=[EventRecord(**{**_fields(e), "input_seq": 4}), event(6)]))
        assert [(r.seq, r.input_seq) for r in store.events("run-a")] == [(5, 4), (6, 0)]

    # -- logs ---------------------------------------------------------------------------------------

    def test_logs_by_component(self, store: EventStore) -> None:
        lines = [log_line(s, "root" if s % 3 == 0 else "root.w_1") for s in range(1, 10)]
        store.write(Batch(logs=[*lines, log_line(10, run_id="run-b")]))
        assert [g.seq for g in store.logs("run-a")] == list(range(1, 10))
        assert [g.seq for g in store.logs("run-a", component="root")] == [3, 6, 9]
        assert [g.seq for g in store.logs("run-a", component="root.w_1", after_seq=4)] == [5, 7, 8]
        assert [g.seq for g in store.logs("run-a", limit=2)] == [1, 2]
        assert store.logs("run-a")[0] == lines[0]
        assert [g.seq for g in store.logs("run-b")] == [10]

    # -- the store as a whole -----------------------------------------------------------------------

    def test_max_log_seq(self, store: EventStore) -> None:
        assert store.max_log_seq() == 0
        store.write(Batch(logs=[log_line(4), log_line(9)]))
        assert store.max_log_seq() == 9

    # -- meta ---------------------------------------------------------------------------------------

    def test_meta_is_written_with_a_batch_and_overwritten(self, store: EventStore) -> None:
        assert store.meta() == {}
        store.write(Batch(events=[event(1)], meta={"position": "1", "stream_id": "s1"}))
        store.write(Batch(meta={"position": "7"}))
        assert store.meta() == {"position": "7", "stream_id": "s1"}

    def test_meta_is_part_of_the_batch_transaction(self, store: EventStore) -> None:
        store.write(Batch(events=[event(1)], meta={"position": "1"}))
        clash = EventRecord(1, "other-id", "run-a", "X", 1, 1.0, "s", {})
        with pytest.raises(StoreError):
            store.write(Batch(events=[clash], meta={"position": "99"}))
        assert store.meta() == {"position": "1"}, "a failed batch moves no position"

    def test_set_meta_once_keeps_the_first_value(self, store: EventStore) -> None:
        assert store.set_meta_once("db_id", "first") == "first"
        assert store.set_meta_once("db_id", "second") == "first"
        assert store.meta()["db_id"] == "first"

    def test_set_run_status(self, store: EventStore) -> None:
        store.write(Batch(events=[event(1)], runs=[run_info("run-a", last_seq=1)]))
        store.set_run_status("run-a", "interrupted", "lost NATS")
        info = store.run("run-a")
        assert (info.status, info.message, info.last_seq) == ("interrupted", "lost NATS", 1)

    def test_upgrade_twice_is_harmless(self, store: EventStore) -> None:
        store.write(Batch(events=[event(1)]))
        store.upgrade()
        store.upgrade()
        assert [e.seq for e in store.events("run-a")] == [1]

    def test_a_second_store_sees_committed_writes(self, open_stores: StoreFactory) -> None:
        first, second = open_stores(), open_stores()
        first.write(Batch(events=[event(1)], runs=[run_info()]))
        assert [e.seq for e in second.events("run-a")] == [1]
        assert second.run("latest").id == "run-a"

    def test_concurrent_writers_from_threads(self, store: EventStore) -> None:
        threads, per_thread, size = 4, 5, 50
        errors: list[BaseException] = []

        def writer(t: int) -> None:
            try:
                for b in range(per_thread):
                    base = 1 + (t * per_thread + b) * size
                    store.write(
                        Batch(
                            events=[event(s, f"run-{t}") for s in range(base, base + size)],
                            runs=[run_info(f"run-{t}", created_at=float(t), last_seq=base + size - 1)],
                        )
                    )
                    store.events(f"run-{t}", after_seq=base - 1)  # readers interleave with writers
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        assert store.max_seq() == threads * per_thread * size
        for t in range(threads):
            assert len(store.events(f"run-{t}")) == per_thread * size
            assert store.run(f"run-{t}").last_seq == (t + 1) * per_thread * size
