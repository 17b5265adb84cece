"""The event types of a run, and the codec between them and their wire and SQL forms.

An event is a frozen dataclass with a stable dotted ``TYPE`` and a ``VERSION``. Its body is JSON and
small; bytes live in the artifact store and events carry the reference. Old versions are upcast at
read time (``UPCASTERS``), so the fold only ever sees the newest version of each type.

Subjects on the ``LK`` stream (one stream for every run; its sequence is the global order)::

    lk.<run>.run          run.*: created, ended, interrupted, resumed, stop_requested
    lk.<run>.flow         flow.state_changed
    lk.<run>.cmd.<work>   work.run_requested, work.stop_requested (what a worker consumes)
    lk.<run>.evt.<work>   work.status_changed, work.state_changed, path.* (what a worker produces)

``<work>`` is the Work's name with dots turned into colons (``root.w_1`` -> ``root:w_1``), since a
dot separates subject tokens. Printed lines go to the ``LKLOG`` stream, ``lklog.<run>.<component>``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from . import _json
from ._records import JSON, EventRecord
from .errors import EventError

EVENT_STREAM = "LK"
LOG_STREAM = "LKLOG"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Each event class's field names, once: ``dataclasses.fields`` is slow for a hot path."""


@dataclass(frozen=True)
class Event:
    """Base of every event type."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def body(self) -> dict[str, JSON]:
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        return {name: getattr(self, name) for name in names}

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.run"


# -- run --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCreated(Event):
    """A run began. ``app`` is the artifact ref of the pickled LightningApp."""

    TYPE: ClassVar[str] = "run.created"
    name: str
    app_file: str
    app: str
    components: dict[str, dict[str, JSON]]
    """Every component by name: ``{"kind": "flow"|"work", "vars": {...}, "spec": {...}}``."""


@dataclass(frozen=True)
class RunEnded(Event):
    """The run ended for good: ``status`` is succeeded, failed or stopped."""

    TYPE: ClassVar[str] = "run.ended"
    status: str
    message: str = ""


@dataclass(frozen=True)
class RunInterrupted(Event):
    """The kernel stopped hosting the run before it ended (Ctrl-C, SIGTERM); it can be resumed."""

    TYPE: ClassVar[str] = "run.interrupted"
    reason: str


@dataclass(frozen=True)
class RunResumed(Event):
    TYPE: ClassVar[str] = "run.resumed"
    reason: str = ""


@dataclass(frozen=True)
class RunStopRequested(Event):
    """Someone asked the run to stop (``lightning-kernel stop RUN``)."""

    TYPE: ClassVar[str] = "run.stop_requested"
    reason: str = ""


# -- flow -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowStateChanged(Event):
    """What one ``root.run()`` iteration changed: ``{component name: {attribute: new value}}``."""

    TYPE: ClassVar[str] = "flow.state_changed"
    changes: dict[str, dict[str, JSON]]

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.flow"


# -- work -------------------------------------------------------------------------------------------


def work_token(name: str) -> str:
    return name.replace(".", ":")


@dataclass(frozen=True)
class _WorkEvent(Event):
    work: str

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.evt.{work_token(self.work)}"


@dataclass(frozen=True)
class WorkRunRequested(_WorkEvent):
    """The flow called ``work.run(*args, **kwargs)`` and the call was not cached.

    ``call`` identifies the call (its argument hash, with a count when ``cache_calls=False``);
    ``index`` numbers a Work's calls from 1; ``vars`` is the Work's state when it was called.
    """

    TYPE: ClassVar[str] = "work.run_requested"
    call: str
    index: int
    args: list[JSON]
    kwargs: dict[str, JSON]
    vars: dict[str, JSON] = field(default_factory=dict)

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.cmd.{work_token(self.work)}"


@dataclass(frozen=True)
class WorkStopRequested(_WorkEvent):
    TYPE: ClassVar[str] = "work.stop_requested"
    reason: str = ""

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.cmd.{work_token(self.work)}"


@dataclass(frozen=True)
class PathPersistRequested(_WorkEvent):
    """Work ``requester`` needs ``path`` of ``work`` (its origin) as it is now.

    A command to the origin's worker: it persists the Path (if a call is running; an idle Work's
    files were persisted when its last call ended) and answers with a ``path.persist_answered``
    record carrying ``request``. The kernel answers for an origin that has no worker.
    """

    TYPE: ClassVar[str] = "work.persist_requested"
    path: str
    request: str
    requester: str

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.cmd.{work_token(self.work)}"


PERSIST_ANSWERED = "path.persist_answered"
"""The ``WorkRecord`` kind that answers a ``PathPersistRequested``: data ``{request, path,
persisted, reason}``."""


@dataclass(frozen=True)
class WorkStatusChanged(_WorkEvent):
    """A call of a Work reached ``stage``: running, succeeded, failed or stopped."""

    TYPE: ClassVar[str] = "work.status_changed"
    call: str
    stage: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class WorkStateChanged(_WorkEvent):
    """A Work changed its public attributes while running ``call``."""

    TYPE: ClassVar[str] = "work.state_changed"
    call: str
    changes: dict[str, JSON]


@dataclass(frozen=True)
class WorkRecord(_WorkEvent):
    """A fact about a Work that the fold does not fold: files persisted, transferred, restored.

    ``kind`` is the storage event (``path.persisted``, ``path.transferred``...) and ``data`` its body.
    """

    TYPE: ClassVar[str] = "work.record"
    kind: str
    data: dict[str, JSON] = field(default_factory=dict)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        RunCreated,
        RunEnded,
        RunInterrupted,
        RunResumed,
        RunStopRequested,
        FlowStateChanged,
        WorkRunRequested,
        WorkStopRequested,
        PathPersistRequested,
        WorkStatusChanged,
        WorkStateChanged,
        WorkRecord,
    )
}

Upcaster = Callable[[dict[str, JSON]], dict[str, JSON]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""``(type, version) -> body of version + 1``; registered as event types evolve."""


def new_event_id() -> str:
    return os.urandom(12).hex()


def encode(event: Event, run_id: str, source: str, event_id: str | None = None) -> tuple[str, str, bytes]:
    """``(subject, event id, payload)`` for publishing ``event``. A pure function."""
    eid = event_id or new_event_id()
    payload = {
        "id": eid,
        "run": run_id,
        "type": event.TYPE,
        "v": event.VERSION,
        "ts": time.time(),
        "src": source,
        "body": event.body(),
    }
    try:
        data = _json.dumps_strict(payload)
    except (TypeError, ValueError) as exc:
        raise EventError(f"event {event.TYPE} of run {run_id} has a body that is not JSON: {exc}") from exc
    return event.subject(run_id), eid, data


def decode_record(data: bytes, seq: int) -> EventRecord:
    """The record of a payload published with ``encode``, at stream sequence ``seq``."""
    try:
        p = _json.loads(data)
        return EventRecord(
            seq=seq,
            id=p["id"],
            run_id=p["run"],
            type=p["type"],
            version=p["v"],
            ts=p["ts"],
            source=p["src"],
            body=p["body"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise EventError(f"message at stream sequence {seq} is not a lightning-kernel event: {exc}") from exc


def to_event(record: EventRecord) -> Event:
    """The typed event of ``record``, upcast to the newest version of its type."""
    cls = EVENT_TYPES.get(record.type)
    if cls is None:
        raise EventError(
            f"event {record.seq} of run {record.run_id} has unknown type {record.type!r}; "
            "is this kernel older than the one that wrote it?"
        )
    body, version = record.body, record.version
    while version < cls.VERSION:
        step = UPCASTERS.get((record.type, version))
        if step is None:
            raise EventError(f"no upcaster for {record.type} v{version} (event {record.seq})")
        body, version = step(body), version + 1
    if version > cls.VERSION:
        raise EventError(
            f"event {record.seq} is {record.type} v{version}, newer than this kernel's v{cls.VERSION}"
        )
    try:
        return cls(**body)
    except TypeError as exc:
        raise EventError(f"event {record.seq} ({record.type}) has a body that does not fit: {exc}") from exc
