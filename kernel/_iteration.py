"""One flow iteration: state in, events out. The live loop (``_loop.RunDriver``) and the replayer
(``_replay``) run this same code, so a replay re-computes exactly what the run computed.

An iteration hydrates the live Flow/Work objects from the state, calls ``root.run()`` (its
``work.run()``/``work.stop()`` calls come here, as the Works' dispatcher, and decide from the state
what to request), then diffs the flow's public attributes against the state. What it did is an
``Outcome``: the events to publish (state changes, run and stop requests, in the order the flow made
them) and the run's end when the flow stopped or failed. It publishes nothing and starts nothing:
the loop publishes the events stamped with the iteration's ``input_seq`` (the seq of the state it
ran on); the replayer compares them with the events the run recorded with that ``input_seq``.

Every decision reads the state, never the kernel's memory (which worker handles it has), so that an
iteration replayed on the recorded state decides the same: ``work.stop()`` asks a stop when the Work's
newest call is pending or running, or a worker of it runs (``state["works"][w]["worker"]``).
"""

from __future__ import annotations

import hashlib
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _schedule as schedules
from ._app import LightningApp, describe
from ._codec import check_size
from ._component import Component, walk
from ._dispatch import USER_STOP, Blocked, decide
from ._events import ComponentAdded, Event, FlowStateChanged, RunEnded, WorkRunRequested, WorkStopRequested
from ._flow import AppFail, AppStop
from ._status import WorkStageStatus
from ._tee import LineTee
from ._work import LightningWork
from .errors import KernelError, StateError

DEFAULT_LIMIT = 1024 * 1024
"""NATS's default max_payload: the size limit of a replay, which has no server to ask."""


class FlowInterrupted(BaseException):
    """Raised inside ``root.run()`` by the kernel's signal handler (SIGTERM, Ctrl-C): the iteration is
    dropped, and the kernel interrupts the run."""


@dataclass
class Outcome:
    """What one iteration did: ``events`` to publish in order, and ``end`` when the run ends."""

    events: list[Event] = field(default_factory=list)
    end: RunEnded | None = None
    interrupted: bool = False
    """The iteration was interrupted (``FlowInterrupted``): nothing of it counts."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    """The components the flow added, pickled, by ref: the loop stores them before the events go."""


Runner = Callable[[Callable[[], Any]], Any]
"""Calls ``root.run`` (the replayer's debugger wraps it: ``pdb.runcall``)."""


class FlowIteration:
    """Runs iterations of ``app``'s flow; it is the dispatcher of the app's Works."""

    def __init__(
        self,
        app: LightningApp,
        limit: Callable[[], int] = lambda: DEFAULT_LIMIT,
        on_line: Callable[[str], None] | None = None,
        echo: bool = True,
        restore_from: Callable[[str], bytes] | None = None,
    ) -> None:
        self.app = app
        self._limit = limit
        self.on_line = on_line
        """Gets each line ``root.run()`` prints (the live loop records them as the flow's logs)."""
        self.echo = echo
        """Whether the lines also go to the terminal."""
        self.in_flow = False
        """True while ``root.run()`` runs (a signal handler may then interrupt it)."""
        self._outbox: list[Event] = []
        self._state: dict[str, Any] = {}
        self._added: list[str] = []
        self._blobs: dict[str, bytes] = {}
        """The pickles of this iteration's run() arguments that are not JSON."""
        self.restore_from = restore_from
        """Reads a dynamic component's pickle from the artifact store (None: a replay, whose flow
        adds its components again itself)."""
        for comp in app.components.values():
            self._own(comp)

    def _own(self, comp: Component) -> None:
        object.__setattr__(comp, "_lk_tree", self)
        if isinstance(comp, LightningWork):
            object.__setattr__(comp, "_lk_dispatcher", self)

    # -- dynamic components ---------------------------------------------------------------------------

    def adopt(self, parent: Component, key: str, child: Component) -> None:
        """``child`` becomes ``parent``'s ``key`` during ``root.run()``: name, host and record it."""
        self._attach(parent, key, child)
        self._added.extend(name for name, _ in walk(child, f"{parent.name}.{key}"))

    def _attach(self, parent: Component, key: str, child: Component) -> None:
        base = parent.name
        found = list(walk(child, f"{base}.{key}"))
        for name, comp in found:
            if name in self.app.components or comp._lk_tree is not None:
                where = comp.name or name
                raise StateError(name, "", f"this component is already in the app as {where}")
        for name, comp in found:
            self.app.add(name, comp)
            self._own(comp)

    def restore(self, state: dict[str, Any]) -> None:
        """Put back the components the flow added in the run so far (a resumed or forked run starts
        from the app's file, which has only those of ``__init__``), from their pickles."""
        if self.restore_from is None:
            return
        import cloudpickle

        for name, known in state["components"].items():
            if name in self.app.components or not known.get("artifact"):
                continue
            parent_name, _, key = name.rpartition(".")
            parent = self.app.components.get(parent_name)
            if parent is None:
                continue
            child = cloudpickle.loads(self.restore_from(known["artifact"]))
            if isinstance(parent, dict):
                dict.__setitem__(parent, key, child)
            elif isinstance(parent, list):
                list.append(parent, child)
            else:
                object.__setattr__(parent, key, child)
            self._attach(parent, key, child)

    def _added_events(self) -> tuple[list[Event], dict[str, bytes]]:
        """``component.added`` for each component added in this iteration, with its pickle."""
        events: list[Event] = []
        blobs: dict[str, bytes] = {}
        for name in self._added:
            comp = self.app.components[name]
            blob = _pickle(comp)
            ref = hashlib.sha256(blob).hexdigest()
            blobs[ref] = blob
            d = describe(comp)
            events.append(
                ComponentAdded(name=name, kind=d["kind"], vars=d["vars"], spec=d["spec"], artifact=ref)
            )
        self._added = []
        return events, blobs

    def run(self, state: dict[str, Any], runner: Runner | None = None) -> Outcome:
        """One iteration on ``state`` (a fold of the run's events)."""
        self.begin(state)
        root = self.app.root
        end: RunEnded | None = None
        real = sys.stdout
        out = LineTee(self.on_line or (lambda line: None), real if self.echo else None)
        sys.stdout = out
        call = runner or (lambda fn: fn())
        book, token = schedules.enter(state)
        try:
            self.in_flow = True
            try:
                if isinstance(root, LightningWork):
                    # A Work as the root: run it once; the app succeeds when it does.
                    if root.has_succeeded:
                        raise AppStop("")
                    call(root.run)
                else:
                    call(root.run)
            finally:
                self.in_flow = False
                schedules.leave(token)
        except FlowInterrupted:
            self._outbox = []  # half an iteration: nothing of it is published
            self._added = []
            return Outcome(interrupted=True)
        except Blocked:
            pass
        except AppStop as stop:
            end = RunEnded(status="succeeded", message=stop.message)
        except AppFail as fail:
            end = RunEnded(status="failed", message=fail.message)
        except KernelError as exc:
            end = RunEnded(status="failed", message=str(exc))
        except Exception as exc:
            end = RunEnded(status="failed", message="".join(traceback.format_exception(exc)))
        finally:
            sys.stdout = real
            out.flush()
        events, blobs, error = self.finish(state)
        if error:
            end = RunEnded(status="failed", message=error)
        events.extend(book.events())  # schedules first hit, then the ticks this iteration ran on
        return Outcome(events=events, end=end, blobs=blobs)

    def begin(self, state: dict[str, Any]) -> None:
        """Get ready for flow code to run on ``state``: the objects hydrated, nothing asked yet."""
        self._outbox = []
        self._added = []
        self._blobs = {}
        self._state = state
        self.hydrate(state)

    def finish(self, state: dict[str, Any]) -> tuple[list[Event], dict[str, bytes], str]:
        """What the flow code since ``begin`` did: its events in order (the components it added,
        its state change, its run and stop requests), the pickles to store, and the error that makes
        them unrecordable ("" for none: then there are no events)."""
        try:
            changes = self.diff(state)
            # First: the events after them name these components.
            events, blobs = self._added_events()
        except KernelError as exc:
            self._outbox, self._added = [], []
            return [], {}, str(exc)
        except Exception as exc:  # a component that cannot be pickled
            self._outbox, self._added = [], []
            return [], {}, f"a component added by the flow cannot be recorded: {exc}"
        if changes:
            events.append(FlowStateChanged(changes=changes))
        events.extend(self._outbox)
        self._outbox = []
        return events, {**self._blobs, **blobs}, ""

    def hydrate(self, state: dict[str, Any]) -> None:
        comps = state["components"]
        works = state["works"]
        if len(comps) > len(self.app.components):
            self.restore(state)
        for name, comp in self.app.components.items():
            known = comps.get(name)
            if known is None:
                raise KernelError(
                    f"the app has a component {name} that the run does not know (its components: "
                    f"{', '.join(sorted(comps))})"
                )
            comp._lk_set_vars(known["vars"])
            if isinstance(comp, LightningWork):
                w = works[name]
                object.__setattr__(comp, "_lk_status", w["status"])
                object.__setattr__(comp, "_lk_calls", w["calls"])
                object.__setattr__(comp, "_lk_last_index", w["last_index"])
                object.__setattr__(comp, "_lk_endpoint", w.get("endpoint") or {})

    def diff(self, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
        comps = state["components"]
        changes: dict[str, dict[str, Any]] = {}
        limit = self._limit()
        total = 0
        added = set(self._added)
        for name, comp in self.app.components.items():
            if name in added:
                continue  # its state goes whole in component.added
            known = comps[name]["vars"]
            now = comp._lk_vars()
            diff = {k: v for k, v in now.items() if k not in known or known[k] != v}
            if diff:
                check_size(name, diff, limit, extra=total)
                total += len(str(diff))
                changes[name] = diff
        return changes

    # -- the dispatcher (LightningWork.run / stop on the flow side) -----------------------------------

    def call(self, work: LightningWork, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls: dict[str, Any] = work._lk_calls
        last_index: int = getattr(work, "_lk_last_index", 0)
        request, block = decide(
            work.name, work.cache_calls, work.parallel, calls, last_index, args, kwargs, self._blobs
        )
        if request is not None:
            limit = self._limit()
            vars_ = work._lk_vars()
            check_size(f"{work.name}.run()", {"args": request["args"], "kwargs": request["kwargs"]}, limit)
            check_size(work.name, vars_, limit)
            self._outbox.append(WorkRunRequested(work=work.name, vars=vars_, **request))
            # Seen at once by later calls in this same iteration; the event brings the same.
            pending = {
                "stage": WorkStageStatus.PENDING,
                "index": request["index"],
                "reason": "",
                "message": "",
            }
            object.__setattr__(work, "_lk_calls", {**calls, request["call"]: pending})
            object.__setattr__(work, "_lk_last_index", request["index"])
            object.__setattr__(work, "_lk_status", {"stage": WorkStageStatus.PENDING})
        if block:
            raise Blocked()

    def stop(self, work: LightningWork) -> None:
        worker = (self._state.get("works", {}).get(work.name) or {}).get("worker") or {}
        if (
            work.status.stage in (WorkStageStatus.PENDING, WorkStageStatus.RUNNING)
            or worker.get("state") == "running"
        ):
            self._outbox.append(WorkStopRequested(work=work.name, reason=USER_STOP))


RUNTIME_ATTRS = ("_lk_tree", "_lk_dispatcher", "_lk_on_change")
"""What ties a live component to this kernel: never pickled with it."""


def _pickle(comp: Component) -> bytes:
    import cloudpickle

    saved = []
    for _, c in walk(comp, comp.name):
        saved.append((c, {k: c.__dict__.pop(k) for k in RUNTIME_ATTRS if k in c.__dict__}))
    try:
        return bytes(cloudpickle.dumps(comp))
    finally:
        for c, attrs in saved:
            c.__dict__.update(attrs)
