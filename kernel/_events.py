"""The event types of a run, and the codec between them and their wire and SQL forms.

An event is a frozen dataclass with a stable dotted ``TYPE`` and a ``VERSION``. Its body is JSON and
small; bytes live in the artifact store and events carry the reference. Old versions are upcast at
read time (``UPCASTERS``), so the fold only ever sees the newest version of each type.

Subjects on the ``LK`` stream (one stream for every run; its sequence is the global order)::

    lk.<run>.run          run.*: created, ended, interrupted, resumed, stop_requested
    lk.<run>.flow         flow.state_changed
    lk.<run>.cmd.<work>   work.run_requested, work.stop_requested, work.persist_requested,
                          work.worker_started, work.worker_exited (what a worker consumes)
    lk.<run>.evt.<work>   work.status_changed, work.state_changed, work.record (what a worker produces)

``<work>`` is the Work's name with dots turned into colons (``root.w_1`` -> ``root:w_1``), since a
dot separates subject tokens. Printed lines go to the ``LKLOG`` stream, ``lklog.<run>.<component>``.

Workers are numbered attempts. ``work.worker_started``/``work.worker_exited`` record each one's life,
every event a worker publishes carries its ``attempt``, and the fold ignores the events of an attempt
that a newer one superseded or that the kernel fenced (``attempt`` 0: the kernel's own, never fenced).
A payload that cannot be decoded is kept as an ``event.unreadable`` record of its sequence number, so
it is reported, never skipped and never a stall.
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
from .errors import EventError, PayloadTooLarge

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
    """A run began. ``app`` is the artifact ref of the pickled LightningApp; ``code`` the ref of the
    app's folder, from which ``module`` (the app file, at ``entry`` in it) is imported first."""

    TYPE: ClassVar[str] = "run.created"
    name: str
    app_file: str
    app: str
    components: dict[str, dict[str, JSON]]
    """Every component by name: ``{"kind": "flow"|"work", "vars": {...}, "spec": {...}}``."""
    code: str = ""
    module: str = ""
    entry: str = ""
    db: str = ""
    """The id of the database of the kernel that created the run: the one that records it."""


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
    attempt: int = 0


@dataclass(frozen=True)
class WorkStateChanged(_WorkEvent):
    """A Work changed its public attributes while running ``call``."""

    TYPE: ClassVar[str] = "work.state_changed"
    call: str
    changes: dict[str, JSON]
    attempt: int = 0


@dataclass(frozen=True)
class WorkRecord(_WorkEvent):
    """A fact about a Work that the fold does not fold: files persisted, transferred, restored.

    ``kind`` is the storage event (``path.persisted``, ``path.transferred``...) and ``data`` its body.
    """

    TYPE: ClassVar[str] = "work.record"
    kind: str
    data: dict[str, JSON] = field(default_factory=dict)
    attempt: int = 0


@dataclass(frozen=True)
class WorkerStarted(_WorkEvent):
    """The kernel started (or re-attached) worker number ``attempt`` of a Work through ``executor``;
    ``ref`` is the executor's JSON identity of it (``WorkerHandle.ref``). A newer attempt supersedes
    every older one: their events are ignored from now on, and an older worker that sees this stops."""

    TYPE: ClassVar[str] = "work.worker_started"
    attempt: int
    executor: str
    ref: dict[str, JSON] = field(default_factory=dict)
    attached: bool = False
    """True when a restarted kernel re-attached a worker that was still alive."""

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.cmd.{work_token(self.work)}"


@dataclass(frozen=True)
class WorkerExited(_WorkEvent):
    """Worker ``attempt`` of a Work is over: ``cause`` is exited, killed, preempted or lost (fenced by
    a kernel that could not reach it). Its events are ignored from now on."""

    TYPE: ClassVar[str] = "work.worker_exited"
    attempt: int
    cause: str
    code: int | None = None
    signal: int | None = None
    message: str = ""

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.cmd.{work_token(self.work)}"


UNREADABLE = "event.unreadable"
"""The type of the record that stands for a payload nobody could decode (body: subject, error, data)."""


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
        WorkerStarted,
        WorkerExited,
    )
}

Upcaster = Callable[[dict[str, JSON]], dict[str, JSON]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""``(type, version) -> body of version + 1``; registered as event types evolve."""


ENVELOPE_BYTES = 2048
"""Room kept for the envelope (id, run, type, timestamps, the call) beside a body's values."""


def check_size(where: str, values: dict[str, JSON], limit: int, extra: int = 0) -> None:
    """Raise ``PayloadTooLarge`` naming the biggest of ``values`` (the attributes of ``where``) when
    they, as JSON and with ``extra`` bytes more, would not fit in one NATS message of ``limit`` bytes."""
    if limit <= 0:
        return
    size = len(_json.dumps(values)) + extra
    if size + ENVELOPE_BYTES <= limit:
        return
    sizes = {k: len(_json.dumps(v)) for k, v in values.items()}
    biggest = max(sizes, key=lambda k: sizes[k]) if sizes else ""
    raise PayloadTooLarge(where, str(biggest), size, limit - ENVELOPE_BYTES)


def new_event_id() -> str:
    return os.urandom(12).hex()


def encode(
    event: Event, run_id: str, source: str, event_id: str | None = None, attempt: int = 0
) -> tuple[str, str, bytes]:
    """``(subject, event id, payload)`` for publishing ``event``. A pure function. ``attempt`` stamps a
    worker's events (those with an ``attempt`` field left at 0) with the worker's attempt."""
    eid = event_id or new_event_id()
    body = event.body()
    if attempt and body.get("attempt") == 0:
        body["attempt"] = attempt
    payload = {
        "id": eid,
        "run": run_id,
        "type": event.TYPE,
        "v": event.VERSION,
        "ts": time.time(),
        "src": source,
        "body": body,
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
        record = EventRecord(
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
    shape = (
        isinstance(record.id, str)
        and isinstance(record.run_id, str)
        and isinstance(record.type, str)
        and isinstance(record.version, int)
        and isinstance(record.ts, (int, float))
        and isinstance(record.source, str)
        and isinstance(record.body, dict)
    )
    if not shape:
        raise EventError(f"message at stream sequence {seq} has an envelope of the wrong types")
    return record


def unreadable_record(subject: str, data: bytes, seq: int, error: str) -> EventRecord:
    """The record kept for a payload at ``seq`` that is not a lightning-kernel event. Deterministic (no
    clock), so the recorder and the live loop make the same one; the run is the subject's."""
    parts = subject.split(".")
    run_id = parts[1] if len(parts) > 2 and parts[0] == "lk" else ""
    text = data[:2048].decode("utf-8", errors="replace")
    body: dict[str, JSON] = {"subject": subject, "error": error, "size": len(data), "data": text}
    return EventRecord(
        seq=seq,
        id=f"unreadable-{seq}",
        run_id=run_id,
        type=UNREADABLE,
        version=1,
        ts=0.0,
        source="",
        body=body,
    )


def read_record(subject: str, data: bytes, seq: int) -> EventRecord:
    """``decode_record``, or the unreadable record of the payload when it cannot be decoded."""
    try:
        record = decode_record(data, seq)
    except EventError as exc:
        return unreadable_record(subject, data, seq, str(exc))
    parts = subject.split(".")
    if len(parts) > 2 and parts[0] == "lk" and parts[1] != record.run_id:
        # An event may only speak for the run whose subject it was published on.
        error = f"event of run {record.run_id!r} published on {subject}"
        return unreadable_record(subject, data, seq, error)
    return record


_BODY_KEYS: dict[type[Event], tuple[frozenset[str], frozenset[str]]] = {}
"""Each event class's ``(required, allowed)`` body keys, once."""


def _body_keys(cls: type[Event]) -> tuple[frozenset[str], frozenset[str]]:
    keys = _BODY_KEYS.get(cls)
    if keys is None:
        fields = dataclasses.fields(cls)
        required = frozenset(
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        keys = _BODY_KEYS[cls] = (required, frozenset(f.name for f in fields))
    return keys


def live_record(subject: str, data: bytes, seq: int) -> EventRecord:
    """``read_record`` for those who act on events as they come (the flow loop, workers): an event
    of a known type that cannot become its event (a newer version, a body that does not fit) is
    handed on as the unreadable record of its payload, so nobody reads fields it does not have. The
    fold treats both alike (the run's ``unreadable``), so the live state is the recorded one's."""
    record = read_record(subject, data, seq)
    cls = EVENT_TYPES.get(record.type)
    if cls is None:
        return record  # unknown or unreadable already: the fold ignores it
    if record.version == cls.VERSION:
        required, allowed = _body_keys(cls)
        keys = record.body.keys()
        if required <= keys and keys <= allowed:
            return record  # the common case, checked without building the event
    try:
        to_event(record)
    except EventError as exc:
        return unreadable_record(subject, data, seq, str(exc))
    return record


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
