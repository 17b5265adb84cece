"""The event types of a run, and the codec between them and their wire and SQL forms.

An event is a frozen dataclass with a stable dotted ``TYPE`` and a ``VERSION``. Its body is JSON and
small; bytes live in the artifact store and events carry the reference. Old versions are upcast at
read time (``UPCASTERS``), so the fold only ever sees the newest version of each type.

Subjects on the ``LK`` stream (one stream for every run; its sequence is the global order)::

    lk.<run>.run          run.*: created, ended, interrupted, resumed, stop_requested, forked
    lk.<run>.flow         flow.state_changed, flow.schedule_* (registered, started, ticked, consumed)
    lk.<run>.api          flow.request_received, flow.request_answered (the flow's HTTP API, commands)
    lk.<run>.cmd.<work>   work.run_requested, work.stop_requested, work.persist_requested,
                          work.worker_started, work.worker_exited (what a worker consumes)
    lk.<run>.evt.<work>   work.status_changed, work.state_changed, work.record (what a worker produces)

``<work>`` is the Work's name with dots turned into colons (``root.w_1`` -> ``root:w_1``), since a
dot separates subject tokens. Printed lines go to the ``LKLOG`` stream, ``lklog.<run>.<component>``.

Workers are numbered attempts. ``work.worker_started``/``work.worker_exited`` record each one's life,
every event a worker publishes carries its ``attempt``, and the fold ignores the events of an attempt
that a newer one superseded or that the kernel fenced (``attempt`` 0: the kernel's own, never fenced).
A payload that cannot be decoded is kept as an ``event.unreadable`` record of its sequence number, so
it is reported, never skipped and never a stall. The wire forms (encode, decode, upcast, size
limits) are ``_codec``'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from ._records import JSON

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
    argv: list[str] = field(default_factory=list)
    """The app file's arguments (``run app --app_args``): its ``sys.argv[1:]`` wherever it runs."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables for every Work (``run app --env KEY=VALUE``)."""


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


@dataclass(frozen=True)
class RunForked(Event):
    """The run was forked from run ``origin``: the events before this one are copies of ``origin``'s
    events up to seq ``at`` (new ids and seqs; ``input_seq`` remapped), and it goes on live from here.
    ``app_file`` is the fixed flow it runs (``fork --app``), "" when it runs the origin's; ``skipped``
    lists the origin seqs not copied (events this kernel cannot read; the fold ignored them too)."""

    TYPE: ClassVar[str] = "run.forked"
    origin: str
    at: int
    app_file: str = ""
    skipped: list[int] = field(default_factory=list)


# -- flow -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowStateChanged(Event):
    """What one ``root.run()`` iteration changed: ``{component name: {attribute: new value}}``."""

    TYPE: ClassVar[str] = "flow.state_changed"
    changes: dict[str, dict[str, JSON]]

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.flow"


@dataclass(frozen=True)
class ComponentAdded(Event):
    """The flow added component ``name`` while the app ran (a Work or flow set as a new attribute, a
    new item of a ``structures.Dict``/``List``): its ``kind``, ``vars`` and ``spec`` as ``run.created``
    records them, and ``artifact``, the component pickled into the artifact store, from which a
    resumed or forked run and the component's worker rebuild it."""

    TYPE: ClassVar[str] = "component.added"
    name: str
    kind: str
    vars: dict[str, JSON] = field(default_factory=dict)
    spec: dict[str, JSON] = field(default_factory=dict)
    artifact: str = ""

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.flow"


@dataclass(frozen=True)
class FlowRequestReceived(Event):
    """An HTTP request for the flow's API (``configure_api``) or a command (``configure_commands``):
    the run's loop calls the handler when it folds this, and answers with ``flow.request_answered``.

    ``route`` and ``method`` name the handler (a command is ``POST /command/<name>``); ``data`` is the
    request's JSON body (None without one) and ``query`` its query parameters."""

    TYPE: ClassVar[str] = "flow.request_received"
    id: str
    route: str
    method: str
    data: JSON = None
    query: dict[str, str] = field(default_factory=dict)

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.api"


@dataclass(frozen=True)
class FlowRequestAnswered(Event):
    """The answer to request ``id``: an HTTP ``status`` and the handler's JSON ``response`` (an error's
    text for a 4xx or 5xx). Stamped with the request's seq as ``input_seq``, as an iteration's events."""

    TYPE: ClassVar[str] = "flow.request_answered"
    id: str
    status: int
    response: JSON = None

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.api"


@dataclass(frozen=True)
class _ScheduleEvent(Event):
    """An event of the schedule ``key`` of ``flow`` (``flow.schedule()``, ``_schedule``)."""

    flow: str
    key: str

    def subject(self, run_id: str) -> str:
        return f"lk.{run_id}.flow"


@dataclass(frozen=True)
class ScheduleRegistered(_ScheduleEvent):
    """An iteration called ``flow.schedule(...)`` at ``key`` for the first time (it returned True).
    ``cron`` is the expression (aliases expanded); ``start`` the ``start_time`` given, in epoch
    seconds, or None: then the loop records its clock as that iteration began
    (``flow.schedule_started``)."""

    TYPE: ClassVar[str] = "flow.schedule_registered"
    cron: str
    start: float | None = None


@dataclass(frozen=True)
class ScheduleStarted(_ScheduleEvent):
    """The loop's clock as the iteration that registered a schedule without a ``start_time`` began
    (or, if the kernel stopped before it recorded that, when the run was resumed): ticks count from
    ``at``."""

    TYPE: ClassVar[str] = "flow.schedule_started"
    at: float


@dataclass(frozen=True)
class ScheduleTicked(_ScheduleEvent):
    """The schedule reached its tick ``at`` (the newest one passed, when several were: they collapse
    into one). The next iteration sees ``flow.schedule()`` return True for it."""

    TYPE: ClassVar[str] = "flow.schedule_ticked"
    at: float


@dataclass(frozen=True)
class ScheduleConsumed(_ScheduleEvent):
    """An iteration ran on the state where tick ``at`` was due: ``flow.schedule()`` returned True
    there, and returns False from now on until the next tick."""

    TYPE: ClassVar[str] = "flow.schedule_consumed"
    at: float


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


@dataclass(frozen=True)
class WorkEndpoint(_WorkEvent):
    """Where worker ``attempt`` of a Work serves: the ``host`` its servers bind, the ``port`` chosen
    for it before ``run()`` (free on its machine, unless the Work fixed one), and the ``internal_ip``
    and ``url`` the flow, other Works and a browser reach it at. Published again with ``listening``
    once something accepts connections there."""

    TYPE: ClassVar[str] = "work.endpoint"
    host: str
    port: int
    internal_ip: str
    url: str
    listening: bool = False
    attempt: int = 0


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
        RunForked,
        FlowStateChanged,
        ComponentAdded,
        FlowRequestReceived,
        FlowRequestAnswered,
        ScheduleRegistered,
        ScheduleStarted,
        ScheduleTicked,
        ScheduleConsumed,
        WorkRunRequested,
        WorkStopRequested,
        PathPersistRequested,
        WorkStatusChanged,
        WorkStateChanged,
        WorkRecord,
        WorkerStarted,
        WorkerExited,
        WorkEndpoint,
    )
}
