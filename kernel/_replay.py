"""Replay: re-run a past run's flow code against its recorded history, and name the first place where
it would now do something else.

Every event a flow iteration emitted carries ``input_seq``, the seq of the state that iteration ran
on. The replayer folds the recorded events in order (``_projection.apply``, as the live loop does);
after the event at an ``input_seq`` it runs the iteration (``_iteration.FlowIteration``, the live
loop's own code) on that state, and compares what it emits with what the run recorded with that
``input_seq``: same events, in the same order, with the same bodies (a failure's message by its last
line: a traceback's paths and line numbers may move without the flow deciding otherwise). It starts
no Work and publishes nothing: the Works' results come from the history, as Temporal's replayer
takes activities' results from the workflow's history. After a difference it goes on with the
recorded events, so one change of the flow is one difference, not a cascade.

A request to the flow's API (``flow.request_received``, ``_requests``) is replayed as an iteration
is: its handler runs again on the state at it, and its state change and answer are compared.

Iterations that emitted nothing are not recorded, and are not replayed: a flow whose private
attributes (``self._n``, not state) count iterations may replay differently; its public state is
hydrated from the history at every iteration, as it is live.

``Replayer(app).replay(history, until=SEQ)`` stops at the iteration that produced event SEQ;
``debug=True`` runs that iteration's ``root.run()`` under pdb, with the flow and its Works as they
were. ``history`` is ``EventRecord``s or the dicts ``history --json`` prints (golden histories).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import _projection as projection
from ._app import LightningApp
from ._codec import to_event
from ._events import (
    ComponentAdded,
    Event,
    FlowRequestAnswered,
    FlowStateChanged,
    RunCreated,
    RunEnded,
    WorkRunRequested,
    WorkStopRequested,
)
from ._iteration import FlowIteration
from ._records import EventRecord
from ._requests import answer, is_request
from .errors import EventError, KernelError, NondeterminismError, ReplayError


@dataclass(frozen=True)
class Difference:
    """One iteration that now emits something else than the run recorded."""

    seq: int
    """The recorded event that differs (the iteration's ``input_seq`` when the run recorded nothing)."""
    input_seq: int
    """The state the iteration ran on."""
    component: str
    message: str
    recorded: Any = None
    replayed: Any = None


@dataclass
class ReplayResult:
    run_id: str
    iterations: int = 0
    events: int = 0
    differences: list[Difference] = field(default_factory=list)
    until: int | None = None

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        what = f"replayed {self.iterations} iteration{'s' * (self.iterations != 1)} of {self.run_id}"
        if self.until is not None:
            what += f" up to seq {self.until}"
        if self.ok:
            return f"{what}: no difference"
        n = len(self.differences)
        return f"{what}: {n} difference{'s' * (n != 1)}"

    def error(self) -> NondeterminismError | None:
        """The first difference as an error, None when there is none."""
        if self.ok:
            return None
        d = self.differences[0]
        return NondeterminismError(d.message, d.seq, d.input_seq, d.component, d.recorded, d.replayed)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "iterations": self.iterations,
            "events": self.events,
            "until": self.until,
            "ok": self.ok,
            "differences": [asdict(d) for d in self.differences],
        }


def record_of(item: EventRecord | dict[str, Any], run_id: str = "") -> EventRecord:
    """An ``EventRecord`` from itself or from a line of ``history --json``."""
    if isinstance(item, EventRecord):
        return item
    try:
        return EventRecord(
            seq=int(item["seq"]),
            id=str(item.get("id", "")),
            run_id=str(item.get("run_id", run_id)),
            type=str(item["type"]),
            version=int(item.get("version", 1)),
            ts=float(item.get("ts", 0.0)),
            source=str(item.get("source", "")),
            body=dict(item["body"]),
            input_seq=int(item.get("input_seq", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplayError(
            f"not an event of a history: {json.dumps(item, default=str)[:200]} ({exc})"
        ) from exc


class Replayer:
    """Replays histories against ``app`` (a freshly loaded one: replay hydrates and drives it)."""

    def __init__(self, app: LightningApp, echo: bool = False) -> None:
        self.app = app
        self.flow = FlowIteration(app, echo=echo)

    def replay(
        self,
        history: Iterable[EventRecord | dict[str, Any]],
        until: int | None = None,
        debug: bool = False,
    ) -> ReplayResult:
        records = sorted((record_of(item) for item in history), key=lambda r: r.seq)
        created = next((r for r in records if r.type == RunCreated.TYPE), None)
        if created is None:
            raise ReplayError("the history has no run.created event: is it the whole of a run's history?")
        run_id = created.run_id
        records = [r for r in records if r.run_id == run_id and r.seq >= created.seq]
        if until is not None and not any(r.seq == until for r in records):
            last = records[-1].seq
            raise ReplayError(
                f"run {run_id or '?'} has no event at seq {until} (its events: {created.seq}..{last})"
            )
        outputs: dict[int, list[EventRecord]] = {}
        for r in records:
            if r.input_seq:
                outputs.setdefault(r.input_seq, []).append(r)
        stop_at = None
        if until is not None:
            stop_at = next((r.input_seq for r in records if r.seq == until and r.input_seq), until)
        result = ReplayResult(run_id=run_id, until=until)
        state = projection.empty()
        for r in records:
            state = projection.apply(state, r)
            result.events += 1
            recorded = outputs.get(r.seq)
            last = stop_at is not None and r.seq >= stop_at
            if is_request(r):
                if recorded is not None:  # a request the loop answered: its handler runs again
                    self._request(state, r, recorded, result)
            elif recorded is not None or (last and debug):
                self._iteration(state, r.seq, recorded or [], result, debug and last)
            if last:
                break
        return result

    def _iteration(
        self,
        state: projection.State,
        input_seq: int,
        recorded: list[EventRecord],
        result: ReplayResult,
        debug: bool,
    ) -> None:
        if not state or state["run"]["status"] != projection.RUN_ACTIVE:
            return
        runner = None
        if debug:
            import pdb

            runner = pdb.runcall
        try:
            outcome = self.flow.run(state, runner=runner)
        except KernelError as exc:  # the app does not fit the run (a component it does not know)
            result.differences.append(Difference(input_seq, input_seq, "root", f"at seq {input_seq}: {exc}"))
            return
        result.iterations += 1
        replayed: list[Event] = [*outcome.events, *([outcome.end] if outcome.end is not None else [])]
        difference = compare(input_seq, recorded, replayed)
        if difference is not None:
            result.differences.append(difference)

    def _request(
        self, state: projection.State, record: EventRecord, recorded: list[EventRecord], result: ReplayResult
    ) -> None:
        """A request to the flow's API (``_requests``): its handler runs on the state at it, and what
        it does is compared with what the run recorded for it."""
        if not state or state["run"]["status"] != projection.RUN_ACTIVE:
            return
        got = answer(self.flow, state, record)
        result.iterations += 1
        replayed: list[Event] = [*got.events, *([got.end] if got.end is not None else [])]
        difference = compare(record.seq, recorded, replayed)
        if difference is not None:
            result.differences.append(difference)


def replay_history(
    app: LightningApp,
    history: Iterable[EventRecord | dict[str, Any]],
    until: int | None = None,
    debug: bool = False,
) -> ReplayResult:
    """``Replayer(app).replay(history)``: what the SDK and the CLI call."""
    return Replayer(app, echo=debug).replay(history, until=until, debug=debug)


def load_run_app(config: Any, records: list[EventRecord], app_file: str | None = None) -> LightningApp:
    """The app to replay ``records`` with: ``app_file``'s (new flow code against an old run), else the
    run's own, as it was when the run was created (its code artifact and pickled app, from the store
    of ``config``: this user's own data dir)."""
    if app_file is not None:
        from ._app import load_app

        return load_app(app_file)[0]
    created = next((r for r in records if r.type == RunCreated.TYPE), None)
    if created is None:
        raise ReplayError("the run has no run.created event: it cannot be replayed")
    from lightning_kernel.storage._artifacts import ArtifactStore  # type: ignore[import-not-found,unused-ignore]

    from ._code import load_run_app as load_created

    run = {"id": created.run_id, **to_event(created).body()}
    app: LightningApp = load_created(ArtifactStore(config.artifacts_url, config.storage_options), run)
    return app


# -- comparing an iteration's events ---------------------------------------------------------------


def _normal(body: dict[str, Any]) -> Any:
    return json.loads(json.dumps(body, default=str))


def _recorded_event(record: EventRecord) -> Event | None:
    try:
        return to_event(record)
    except EventError:
        return None


def _last_line(message: str) -> str:
    lines = [line for line in message.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def describe(event: Event) -> str:
    """What an iteration did, as a phrase: ``asked root.w to run with args ['a']``."""
    if isinstance(event, WorkRunRequested):
        return f"asked {event.work} to run with args {event.args}" + (
            f" kwargs {event.kwargs}" if event.kwargs else ""
        )
    if isinstance(event, WorkStopRequested):
        return f"asked {event.work} to stop"
    if isinstance(event, FlowStateChanged):
        return "changed " + ", ".join(f"{c}.{k}" for c, attrs in event.changes.items() for k in attrs)
    if isinstance(event, ComponentAdded):
        return f"added {event.kind} {event.name}"
    if isinstance(event, FlowRequestAnswered):
        said = json.dumps(event.response, default=str)[:200]
        return f"answered request {event.id} with {event.status} {said}"
    if isinstance(event, RunEnded):
        why = _last_line(event.message)
        return f"ended the run ({event.status}{': ' + why if why else ''})"
    return f"emitted {event.TYPE}"


def _component(event: Event) -> str:
    if isinstance(event, (WorkRunRequested, WorkStopRequested)):
        return event.work
    if isinstance(event, FlowStateChanged) and event.changes:
        return next(iter(event.changes))
    if isinstance(event, ComponentAdded):
        return event.name
    return "root"


def compare(input_seq: int, recorded: list[EventRecord], replayed: list[Event]) -> Difference | None:
    """The first difference between what an iteration on the state at ``input_seq`` recorded and
    what it emits now; None when they are the same."""
    for i in range(max(len(recorded), len(replayed))):
        rec = recorded[i] if i < len(recorded) else None
        now = replayed[i] if i < len(replayed) else None
        if rec is None:
            assert now is not None
            return Difference(
                input_seq,
                input_seq,
                _component(now),
                f"at seq {input_seq}, root.run() {describe(now)}, which the run did not record",
                None,
                _normal(now.body()),
            )
        then = _recorded_event(rec)
        if now is None:
            said = describe(then) if then is not None else f"emitted {rec.type}"
            return Difference(
                rec.seq,
                input_seq,
                _component(then) if then is not None else "root",
                f"at seq {rec.seq}, the run recorded that root.run() {said}; replayed on the state at "
                f"seq {input_seq}, it did not",
                rec.body,
                None,
            )
        found = _differs(rec, then, now)
        if found is not None:
            component, what, was, is_now = found
            return Difference(rec.seq, input_seq, component, f"at seq {rec.seq}, {what}", was, is_now)
    return None


def _differs(rec: EventRecord, then: Event | None, now: Event) -> tuple[str, str, Any, Any] | None:
    if then is None or type(then) is not type(now):
        said = describe(then) if then is not None else f"emitted {rec.type}"
        return (
            _component(now),
            f"root.run() {describe(now)}; the run recorded that it {said}",
            rec.body,
            _normal(now.body()),
        )
    if isinstance(then, WorkRunRequested) and isinstance(now, WorkRunRequested):
        if then.work != now.work:
            return (
                now.work,
                f"root.run() asked {now.work} to run; the run recorded a run of {then.work}",
                then.work,
                now.work,
            )
        for key in ("args", "kwargs"):
            was, is_now = _normal({key: getattr(then, key)})[key], _normal({key: getattr(now, key)})[key]
            if was != is_now:
                return (
                    now.work,
                    f"root.run() asked {now.work} to run with {key} {is_now}; the run recorded {was}",
                    was,
                    is_now,
                )
        if then.call != now.call or then.index != now.index:
            return (
                now.work,
                f"root.run() asked {now.work} for call {now.call} (#{now.index}); the run recorded call "
                f"{then.call} (#{then.index})",
                then.call,
                now.call,
            )
        return _attrs(now.work, _normal(then.vars), _normal(now.vars), f"asked {now.work} to run with")
    if isinstance(then, FlowStateChanged) and isinstance(now, FlowStateChanged):
        was, is_now = _normal(then.changes), _normal(now.changes)
        for comp in sorted(set(was) | set(is_now)):
            found = _attrs(comp, was.get(comp, {}), is_now.get(comp, {}), "set")
            if found is not None:
                return found
        return None
    if isinstance(then, RunEnded) and isinstance(now, RunEnded):
        same = then.status == now.status and (
            _last_line(then.message) == _last_line(now.message)
            if then.status == "failed"
            else then.message == now.message
        )
        if not same:
            return (
                "root",
                f"root.run() {describe(now)}; the run recorded that it {describe(then)}",
                then.body(),
                now.body(),
            )
        return None
    if isinstance(then, ComponentAdded) and isinstance(now, ComponentAdded):
        # Not the artifact: a pickle of the same component need not be the same bytes.
        if (then.name, then.kind, _normal(then.spec)) != (now.name, now.kind, _normal(now.spec)):
            return (
                now.name,
                f"root.run() added {now.kind} {now.name}; the run recorded that it added {then.kind} {then.name}",
                {"name": then.name, "kind": then.kind, "spec": then.spec},
                {"name": now.name, "kind": now.kind, "spec": now.spec},
            )
        return _attrs(now.name, _normal(then.vars), _normal(now.vars), f"added {now.name} with")
    if _normal(then.body()) != _normal(now.body()):
        return (
            _component(now),
            f"root.run() {describe(now)} with {now.body()}; the run recorded {then.body()}",
            then.body(),
            now.body(),
        )
    return None


def _attrs(
    component: str, was: dict[str, Any], is_now: dict[str, Any], verb: str
) -> tuple[str, str, Any, Any] | None:
    for key in sorted(set(was) | set(is_now)):
        if key not in is_now:
            return (
                component,
                f"root.run() left {component}.{key} as it was; the run recorded it set to {was[key]!r}",
                was[key],
                None,
            )
        if key not in was:
            return (
                component,
                f"root.run() {verb} {component}.{key} = {is_now[key]!r}; the run recorded no change of it",
                None,
                is_now[key],
            )
        if was[key] != is_now[key]:
            return (
                component,
                f"root.run() {verb} {component}.{key} = {is_now[key]!r}; the run recorded {was[key]!r}",
                was[key],
                is_now[key],
            )
    return None
