"""The persistence interface the kernel talks to; ``_sql`` implements it with SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from . import _projection as projection
from ._records import Batch, EventRecord, LogLine, RunInfo, Snapshot


class EventStore(Protocol):
    """Runs, events, snapshots and logs, durable and idempotent.

    ``write`` is one transaction: events are inserted unless an event with the same ``seq`` or
    ``id`` is there already (so a redelivered batch changes nothing), runs are upserted by id,
    snapshots by (run_id, seq), logs by their seq unless present. A run's row never moves back
    to an older ``last_seq``. A ``seq`` already recorded under another event id (the stream was
    reset) fails the batch with ``StoreError``. ``lightning_kernel.testing.EventStoreContract``
    is the executable form of this contract.
    """

    url: str

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (cheap when it is already there)."""

    def write(self, batch: Batch) -> None: ...

    def events(
        self,
        run_id: str,
        after_seq: int = 0,
        upto_seq: int | None = None,
        limit: int | None = None,
        types: Sequence[str] | None = None,
    ) -> list[EventRecord]: ...

    def max_seq(self) -> int:
        """The highest event seq stored, 0 when there is none."""

    def max_log_seq(self) -> int:
        """The highest log line seq stored, 0 when there is none."""

    def meta(self) -> dict[str, str]:
        """The meta table: the database's id, the streams it records, its position in them."""

    def set_meta_once(self, key: str, value: str) -> str:
        """Set ``key`` unless it is set already; returns what it holds now."""

    def set_run_status(self, run_id: str, status: str, message: str) -> None:
        """Overwrite a run row's status and message (what the log cannot say while NATS is lost)."""

    def runs(self, limit: int | None = None, status: Sequence[str] | None = None) -> list[RunInfo]:
        """Runs, newest first."""

    def run(self, run_id: str) -> RunInfo:
        """One run; ``latest`` names the newest. Raises ``RunNotFound``."""

    def latest_snapshot(
        self, run_id: str, upto_seq: int | None = None, fold: int | None = None
    ) -> Snapshot | None:
        """The newest snapshot of ``run_id`` at or before ``upto_seq``; of fold version ``fold`` only,
        when given."""
        ...

    def logs(
        self, run_id: str, component: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[LogLine]: ...

    def close(self) -> None: ...


LOAD_PAGE = 10_000
"""Events read per query when a load folds a long tail (no snapshot of this fold version yet)."""


def load_state(store: EventStore, run_id: str, upto_seq: int | None = None) -> projection.State:
    """A run's state at ``upto_seq`` (its latest when None): the newest snapshot of this fold
    version, then the tail, read ``LOAD_PAGE`` events at a time so that a run folded from its first
    event (after ``FOLD_VERSION`` changed) never holds all its events in memory at once.

    With the recorder's snapshots every 500 events a load folds at most 499: for a run of 1,000,000
    events (``python bench/replay.py``, this 2-core machine) ``state`` and ``resume`` load in 3.2-4.0
    ms on SQLite and 5.2-5.8 ms on PostgreSQL (the worst of 20: 20-30 ms), against 10-13 s and 18-24 s
    to fold it from its first event, for which pages hold 5-25 MiB more (all its events at once: 1.7 GiB).
    """
    snap = store.latest_snapshot(run_id, upto_seq=upto_seq, fold=projection.FOLD_VERSION)
    state = snap.state if snap else projection.empty()
    after = snap.seq if snap else 0
    while True:
        page = store.events(run_id, after_seq=after, upto_seq=upto_seq, limit=LOAD_PAGE)
        state = projection.fold(page, state)
        if len(page) < LOAD_PAGE:
            return state
        after = page[-1].seq
