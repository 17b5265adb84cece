"""Plain records that cross the boundaries between the bus, the SQL store and the projection.

Only the codec (``_codec``) knows bytes; the store and the bus move these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = Any
"""A value made of dict, list, str, int, float, bool and None."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event as stored: the envelope and its JSON body.

    ``seq`` is the JetStream stream sequence, global across runs; it orders events. ``ts`` is the
    producer's wall clock (seconds since the epoch), recorded, never read by the fold.
    """

    seq: int
    id: str
    run_id: str
    type: str
    version: int
    ts: float
    source: str
    body: dict[str, JSON]
    input_seq: int = 0
    """For an event a flow iteration emitted: the seq of the state that iteration ran on (the newest
    event folded before it), which a replay re-runs it from. 0 for every other event."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One row of the runs table."""

    id: str
    name: str
    app_file: str
    status: str  # running | interrupted | succeeded | failed | stopped
    created_at: float
    updated_at: float
    message: str = ""
    last_seq: int = 0
    events: int = 0
    """How many events the run has (``last_seq`` is a stream sequence, global across runs)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The projection's state of one run after the event ``seq``."""

    run_id: str
    seq: int
    state: dict[str, JSON]
    fold: int = 0
    """The version of the fold that computed ``state`` (``_projection.FOLD_VERSION``): a snapshot of
    another version is ignored, its run folded from an older snapshot or from its first event."""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a component printed. ``seq`` is the log stream's sequence (0 before it is known)."""

    seq: int
    run_id: str
    component: str
    ts: float
    stream: str  # stdout | stderr
    line: str


@dataclass(frozen=True, slots=True)
class Fence:
    """The recorder's claim on a database, checked in the transaction of each of its batches.

    The meta row ``recorder`` names the kernel that records into the database. A batch with a fence
    is written only while that row names ``holder`` (``take``: it sets the row, which the kernel that
    took the recorder lease does before it records). A kernel frozen past its lease (SIGSTOP, a VM
    paused) between its lease check and its commit thus writes nothing once another took over.

    On PostgreSQL the row is read ``FOR SHARE``: the events and logs batches of one kernel do not wait
    for each other, and a take-over waits for the batches in flight. So that a frozen kernel cannot
    hold those locks for ever, its transaction ends (the server cancels it) after ``hold_s`` without
    a word from it, idle or inside a statement (a COPY waiting for rows)."""

    holder: str
    hold_s: float
    take: bool = False


@dataclass(slots=True)
class Batch:
    """What the recorder writes in one transaction: all of it, or none of it."""

    events: list[EventRecord] = field(default_factory=list)
    runs: list[RunInfo] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    """Rows of the meta table to set with the rest (the recorder's position in its streams)."""
    fence: Fence | None = None
    """Write only as the recorder the database names (``Fence``)."""
